"""`clubstack contest judge`: what a participant runs before submitting."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from clubstack.cli import main
from clubstack.contest import p256

from .conftest import SAMPLES

pytestmark = pytest.mark.usefixtures("sandbox_ready")

AES_KEY = "2b7e151628aed2a6abf7158809cf4f3c"


def test_judge_aes_sample_json(monkeypatch, tmp_path):
    monkeypatch.setenv("CLUBSTACK_INSTANCE", str(tmp_path))
    result = CliRunner().invoke(
        main,
        [
            "contest",
            "judge",
            str(SAMPLES / "aes.c"),
            "--kind",
            "aes",
            "--key",
            AES_KEY,
            "--vectors",
            "20",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    verdict = json.loads(result.output)
    assert verdict["accepted"] and verdict["vectors"] == 23 and verdict["performance"] > 1


def test_judge_ecdsa_text_and_rejections(monkeypatch, tmp_path):
    monkeypatch.setenv("CLUBSTACK_INSTANCE", str(tmp_path))
    d = 0xC477F9F65C22CCE20657FAA5B2D1D8122336F851A508A1ED04E479C34985BF96
    pub = p256.encode_point(p256.public_key(d)).hex()
    proof = p256.schnorr_prove(d).hex()
    runner = CliRunner()
    ok = runner.invoke(
        main,
        [
            "contest",
            "judge",
            str(SAMPLES / "ecdsa.c"),
            "--kind",
            "ecdsa",
            "--pubkey",
            pub,
            "--proof",
            proof,
            "--vectors",
            "5",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert "ACCEPTED" in ok.output and "performance" in ok.output
    bad_proof = runner.invoke(
        main,
        [
            "contest",
            "judge",
            str(SAMPLES / "ecdsa.c"),
            "--kind",
            "ecdsa",
            "--pubkey",
            pub,
            "--proof",
            "00" * 64,
        ],
    )
    assert bad_proof.exit_code == 2 and "proof" in bad_proof.output
    wrong_kind = runner.invoke(
        main,
        [
            "contest",
            "judge",
            str(SAMPLES / "ecdsa.c"),
            "--kind",
            "aes",
            "--key",
            AES_KEY,
            "--vectors",
            "5",
        ],
    )
    assert wrong_kind.exit_code == 1 and "REJECTED (filtered)" in wrong_kind.output


def test_prove_prints_a_key_and_proof_the_server_accepts():
    from clubstack.contest.kinds import KINDS

    result = CliRunner().invoke(main, ["contest", "prove", "0x" + "11" * 32])
    assert result.exit_code == 0, result.output
    lines = dict(line.split(" ", 1) for line in result.output.strip().splitlines())
    assert KINDS["ecdsa"].check_public_key(lines["public_key"], lines["proof"])
    assert CliRunner().invoke(main, ["contest", "prove", "00"]).exit_code == 2
