"""A second libvirt "host" reached over ``qemu+ssh://``, made on this machine for the tests.

:func:`remote_libvirt_host` starts a private OpenSSH server on 127.0.0.1 (a free port; its own
host key, config and pid file under ``workdir``; public-key login only, with a key pair the
fixture makes) and yields the libvirt URI a clubstack site uses to reach the libvirtd behind
it, exactly as it reaches a libvirt host on another machine. The "remote" side is this
machine's ``qemu:///system``: libvirt's ssh transport logs in and runs ``virt-ssh-helper``
(Debian's ``libvirt-daemon``; ``nc -U`` on old hosts), which relays the connection to
libvirtd's Unix socket.

The URI is ``qemu+ssh://root@127.0.0.1:PORT/system?keyfile=...&no_tty=1&command=...``:

- ``keyfile``: the private key made for this host (``ssh -i``);
- ``no_tty=1``: ssh never prompts (``BatchMode=yes``): a missing key or an unknown host key
  is an error, not a question nobody answers;
- ``command``: the ssh program libvirt runs. It is a two-line script in ``workdir`` that runs
  ``ssh -F workdir/ssh/ssh_config``, so that the ssh client reads no ``~/.ssh`` of whoever
  runs the tests: libvirt's ``known_hosts`` URI parameter exists only for its ``libssh`` and
  ``libssh2`` transports, and the ``ssh`` transport would otherwise read (and with
  ``no_verify=1`` write) ``~/.ssh/known_hosts``. The config pins this sshd's host key in
  ``workdir/ssh/known_hosts`` with ``StrictHostKeyChecking yes``: the host key is verified,
  not skipped. An operator needs no such script: the clubstack user's own
  ``~/.ssh/known_hosts`` holds the host's key (docs/compute.md, "Remote libvirt hosts").

The login is ``root``, with a key marked ``restrict`` (no pty, no forwarding). A user in the
``libvirt`` group would do on a production Debian host, where polkit (with
libvirt-daemon-system's 60-libvirt.rules) lets that group use the read-write socket; this
machine's libvirtd asks polkit too, and polkit needs a D-Bus system bus, which a container or
CI runner does not have ("Unable to get system bus connection"), so only root may connect.

sshd runs as root (to log a user in), hence the tests that use this need root, as CI has.
sshd reads ``AuthorizedKeysFile`` as the user logging in; the key is given by an
``AuthorizedKeysCommand`` instead, which also avoids StrictModes refusing pytest's folders
under the world-writable /tmp. Everything is stopped when the context ends.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlencode

from clubstack.compute import hosts, tinyguest

HOST_USER = "root"
SSHD = "/usr/sbin/sshd"
SSH = "/usr/bin/ssh"
SSH_KEYGEN = "/usr/bin/ssh-keygen"
PRIVSEP_DIR = Path("/run/sshd")  # compiled into Debian's sshd; the ssh service makes it at boot


class RemoteHostUnavailable(RuntimeError):
    """The machine cannot run the private sshd (not root, OpenSSH missing, libvirtd down)."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.write_text(text)
    os.chmod(path, mode)
    return path


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(
        [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
    )


def _wait_for_banner(port: int, sshd: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sshd.poll() is not None:
            raise RemoteHostUnavailable(f"sshd exited ({sshd.returncode}): {log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as s:
            s.settimeout(2)
            if s.recv(64).startswith(b"SSH-2.0-"):
                return
        time.sleep(0.05)
    raise RemoteHostUnavailable(f"sshd did not answer on port {port}: {log.read_text()}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop sshd and the sessions it forked (its own process group, started by us)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def host_uri(port: int, keyfile: Path, ssh_command: Path) -> str:
    """The libvirt URI of the system libvirtd behind the private sshd."""
    query = urlencode(
        {"keyfile": str(keyfile), "no_tty": "1", "command": str(ssh_command)},
        safe="/",  # paths stay readable in `clubstack compute host list`
        quote_via=quote,
    )
    return f"qemu+ssh://{HOST_USER}@127.0.0.1:{port}/system?{query}"


@contextlib.contextmanager
def remote_libvirt_host(workdir: Path) -> Iterator[str]:
    """Start the private sshd in front of this machine's libvirtd; yield its libvirt URI."""
    if os.geteuid() != 0:
        raise RemoteHostUnavailable("starting sshd for another user needs root")
    for program in (SSHD, SSH, SSH_KEYGEN):
        if not os.access(program, os.X_OK):
            raise RemoteHostUnavailable(
                f"{program} missing: apt-get install openssh-server openssh-client"
            )
    if not shutil.which("virt-ssh-helper") and not shutil.which("nc"):
        raise RemoteHostUnavailable("neither virt-ssh-helper (libvirt-daemon) nor nc is here")
    try:
        tinyguest.ensure_local_libvirtd()
    except (ImportError, OSError, RuntimeError, subprocess.CalledProcessError) as exc:
        raise RemoteHostUnavailable(f"libvirtd on this machine: {exc}") from exc
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)

    folder = workdir / "ssh"
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    host_key, client_key = folder / "host_ed25519", folder / "id_ed25519"
    for key, comment in ((host_key, "clubstack-test-host"), (client_key, "clubstack-test-site")):
        for stale in (key, key.with_suffix(".pub")):
            stale.unlink(missing_ok=True)
        _keygen(key, comment)
    # "restrict": the key may run the command libvirt asks for, nothing else (no pty, no forwards)
    authorized = _write(
        folder / "authorized_keys", "restrict " + client_key.with_suffix(".pub").read_text(), 0o600
    )
    known_hosts = folder / "known_hosts"
    ssh_config = folder / "ssh_config"
    ssh_command = _write(
        folder / "ssh",
        f'#!/bin/sh\nexec {SSH} -F {shlex.quote(str(ssh_config))} "$@"\n',
        0o755,
    )
    log = folder / "sshd.log"

    for _attempt in range(5):  # a free port can be taken between the probe and sshd's bind
        port = _free_port()
        host_pub = host_key.with_suffix(".pub").read_text().split()
        _write(known_hosts, f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
        _write(
            ssh_config,
            "\n".join(
                [
                    "Host *",
                    f"  UserKnownHostsFile {known_hosts}",
                    f"  GlobalKnownHostsFile {known_hosts}",
                    "  StrictHostKeyChecking yes",
                    "  UpdateHostKeys no",
                    f"  IdentityFile {client_key}",
                    "  IdentitiesOnly yes",
                    "  IdentityAgent none",
                    "  BatchMode yes",
                    "  PasswordAuthentication no",
                    "  ControlMaster no",
                    "  ControlPath none",
                    "  ConnectTimeout 10",
                    "",
                ]
            ),
        )
        sshd_config = _write(
            folder / "sshd_config",
            "\n".join(
                [
                    f"ListenAddress 127.0.0.1:{port}",
                    f"HostKey {host_key}",
                    f"PidFile {folder / 'sshd.pid'}",
                    # sshd reads AuthorizedKeysFile as the user, who cannot enter the
                    # test's folder (pytest's are 0700 root); a command runs as root
                    "AuthorizedKeysFile none",
                    f"AuthorizedKeysCommand /bin/cat {authorized}",
                    "AuthorizedKeysCommandUser root",
                    f"AllowUsers {HOST_USER}",
                    "AuthenticationMethods publickey",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "UsePAM no",
                    "PermitTTY no",
                    "X11Forwarding no",
                    "AllowTcpForwarding no",
                    "AllowAgentForwarding no",
                    "PrintMotd no",
                    "LogLevel VERBOSE",
                    "",
                ]
            ),
        )
        with open(log, "wb") as out:
            sshd = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(sshd_config)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            _wait_for_banner(port, sshd, log, timeout=15)
        except RemoteHostUnavailable:
            _stop(sshd)
            if "Address already in use" in log.read_text():
                continue
            raise
        break
    else:
        raise RemoteHostUnavailable(f"no free port for sshd: {log.read_text()}")
    uri = host_uri(port, client_key, ssh_command)
    try:
        if len(uri) > hosts.URI_MAX:
            raise RemoteHostUnavailable(
                f"the URI is {len(uri)} characters, more than a host's URI may have "
                f"({hosts.URI_MAX}): use a shorter workdir than {workdir}"
            )
        yield uri
    finally:
        _stop(sshd)
