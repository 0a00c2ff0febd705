"""The libvirt layer against a real libvirtd and QEMU, booting the tiny guest."""

from __future__ import annotations

import time
import uuid
import xml.etree.ElementTree as ET

import libvirt
import pytest
import yaml

from clubstack.compute import hypervisor as h
from clubstack.compute.errors import HostDownError, HypervisorError

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVzZXJrZXkxMjM0NTY3ODkwYWJjZGVmZ2hpamts ann@laptop"


def spec(**over: object) -> h.DomainSpec:
    base = dict(
        name="capsul-abc",
        uuid=str(uuid.uuid4()),
        capsul_id="cid",
        owner_id="7",
        vcpus=1,
        memory_mib=128,
        disk_path="/p/d.qcow2",
        seed_path="/p/s.iso",
        console_log="/p/c.log",
        domain_type="qemu",
    )
    base.update(over)
    return h.DomainSpec(**base)  # type: ignore[arg-type]


def test_domain_xml_is_well_formed_and_carries_our_metadata():
    xml = h.domain_xml(spec(capsul_id='x"<&>', owner_id="42", network="user"))
    root = ET.fromstring(xml)
    assert root.get("type") == "qemu"
    assert root.findtext("name") == "capsul-abc"
    assert root.findtext("memory") == "128"
    assert root.find("devices/disk/source").get("file") == "/p/d.qcow2"
    assert root.find("devices/interface").get("type") == "user"
    assert h.parse_metadata(xml) == ('x"<&>', "42")  # escaped by ElementTree, read back intact


@pytest.mark.parametrize("name", ["capsul-<x>", "a b", "x&y", "Capsul", "-x", "a" * 64, ""])
def test_domain_xml_refuses_bad_names(name):
    with pytest.raises(HypervisorError):
        h.domain_xml(spec(name=name))


def test_domain_xml_refuses_unknown_network():
    with pytest.raises(HypervisorError):
        h.domain_xml(spec(network="bridge:"))
    assert (
        ET.fromstring(h.domain_xml(spec(network="bridge:br0")))
        .find("devices/interface/source")
        .get("bridge")
        == "br0"
    )


def test_foreign_domain_has_no_metadata():
    assert h.parse_metadata("<domain type='kvm'><name>web</name></domain>") == (None, None)


def test_cloud_config_carries_keys_and_hostname():
    text = h.cloud_config("web1", [KEY, "ssh-rsa AAAAB3Nza x"])
    assert text.startswith("#cloud-config\n")
    data = yaml.safe_load(text)
    assert data["hostname"] == "web1"
    assert data["ssh_authorized_keys"] == [KEY, "ssh-rsa AAAAB3Nza x"]
    assert yaml.safe_load(h.meta_data("i-1", "web1")) == {
        "instance-id": "i-1",
        "local-hostname": "web1",
    }


def test_host_key_fingerprints_from_cloud_init_console():
    console = (
        "boot...\n-----BEGIN SSH HOST KEY FINGERPRINTS-----\n"
        "256 SHA256:old root@x (ED25519)\n-----END SSH HOST KEY FINGERPRINTS-----\n"
        "reboot\nci-info: -----BEGIN SSH HOST KEY FINGERPRINTS-----\n"
        "ci-info: 256 SHA256:abc root@web1 (ECDSA)\n"
        "ci-info: 256 SHA256:def root@web1 (ED25519)\n"
        "ci-info: -----END SSH HOST KEY FINGERPRINTS-----\n"
    )
    assert h.host_key_fingerprints(console) == [
        "256 SHA256:abc root@web1 (ECDSA)",
        "256 SHA256:def root@web1 (ED25519)",
    ]
    assert h.host_key_fingerprints("nothing") == []


def test_counters_are_summed_per_device():
    stats = {
        "cpu.time": 5,
        "balloon.rss": 1000,
        "block.count": 2,
        "block.0.rd.bytes": 3,
        "block.1.rd.bytes": 4,
        "block.0.wr.bytes": 1,
        "net.count": 1,
        "net.0.rx.bytes": 9,
        "net.0.tx.bytes": 8,
    }
    c = h.summarize_counters(stats)
    assert (c["cpu_ns"], c["mem_kib"], c["disk_rd"], c["disk_wr"], c["net_rx"], c["net_tx"]) == (
        5,
        1000,
        7,
        1,
        9,
        8,
    )


def test_unreachable_host_says_why_to_operators_only():
    uri = "qemu+unix:///system?socket=/nonexistent/libvirt-sock"
    with pytest.raises(HostDownError, match="cannot connect") as down:
        h.Hypervisor(uri)
    # the URI (for a remote host: its SSH login, address, key file) is for operators
    assert down.value.detail.startswith(f"cannot connect to {uri}: ")
    assert down.value.message == "The virtual machine host does not answer."
    assert down.value.to_dict()["message"] == down.value.message


def test_a_probe_kernel_missing_on_the_host_is_named_not_taken_for_no_kvm(hv):
    """Before, a probe kernel absent on a (remote) host made a KVM host look like TCG."""
    if not hv.supports("kvm"):  # nothing to probe: no KVM at all
        assert hv.detect_domain_type("/nonexistent/vmlinuz-x") == "qemu"
        return
    with pytest.raises(HypervisorError, match="give --probe-kernel") as refused:
        hv.detect_domain_type("/nonexistent/vmlinuz-x")
    assert (
        refused.value.message
        == "The probe kernel /nonexistent/vmlinuz-x cannot be read on the host."
    )
    assert hv.uri in refused.value.detail


def test_capacity_is_read_from_the_host(hv):
    cap = hv.capacity()
    assert cap.vcpus >= 1 and cap.memory_mib > 0 and cap.disk_gib >= 0


def test_detected_domain_type_really_boots_and_full_lifecycle(hv, guest, domain_type):
    """One boot of the tiny guest: seed read, graceful stop, start, force off, destroy.

    (Reboot is covered through the web page in test_web.py.)
    """
    assert domain_type in ("kvm", "qemu")
    name = "capsul-hvtest"
    disk = hv.create_overlay(h.disk_volume(name), str(guest.disk), 1)
    assert hv.create_overlay(h.disk_volume(name), str(guest.disk), 1) == disk  # idempotent
    seed = hv.create_seed(
        h.seed_volume(name), instance_id="i-hv", hostname="hvtest", ssh_keys=[KEY]
    )
    hv.define(
        spec(
            name=name,
            disk_path=disk,
            seed_path=seed,
            domain_type=domain_type,
            console_log=f"{hv.pool_path}/{h.console_volume(name)}",
            kernel=str(guest.kernel),
            initrd=str(guest.initrd),
            cmdline=guest.cmdline,
        )
    )
    try:
        hv.start(name)
        assert hv.state(name) == "running"
        text = hv.wait_for_console(name, "CLUBSTACK-GUEST ready", 60)
        assert "CLUBSTACK-GUEST hostname=hvtest" in text
        assert f"CLUBSTACK-GUEST ssh-key={KEY}" in text
        # the overlay really is copy-on-write on the base image
        vol = ET.fromstring(hv.pool().storageVolLookupByName(h.disk_volume(name)).XMLDesc(0))
        assert vol.findtext("backingStore/path") == str(guest.disk)
        counters = hv.counters()[name]
        assert counters["cpu_ns"] > 0 and counters["disk_rd"] > 0

        assert hv.stop(name, timeout=30) is True  # the guest powered off by itself
        assert hv.state(name) == "stopped"
        hv.start(name)
        assert hv.state(name) == "running"
        hv.force_off(name)
        assert hv.state(name) == "stopped"
    finally:
        hv.destroy(name, h.capsul_volumes(name))
    assert hv.state(name) == "missing"
    hv.pool().refresh(0)
    names = hv.pool().listVolumes()
    assert not [v for v in names if v.startswith(name)]
    with pytest.raises(libvirt.libvirtError):
        hv.conn.lookupByName(name)


def test_stop_forces_off_a_guest_that_ignores_the_power_button(hv):
    # no kernel and no disk: SeaBIOS waits for a boot device and never answers ACPI
    dom = ET.Element("domain", type="qemu")
    ET.SubElement(dom, "name").text = "capsul-deaf"
    ET.SubElement(dom, "memory", unit="MiB").text = "32"
    os_el = ET.SubElement(dom, "os")
    ET.SubElement(os_el, "type", arch="x86_64", machine="pc").text = "hvm"
    ET.SubElement(ET.SubElement(dom, "features"), "acpi")
    domain = hv.conn.defineXML(ET.tostring(dom, encoding="unicode"))
    try:
        hv.start("capsul-deaf")
        assert hv.state("capsul-deaf") == "running"
        started = time.monotonic()
        assert hv.stop("capsul-deaf", timeout=1.5) is False  # had to be forced
        assert 1.5 <= time.monotonic() - started < 10
        assert hv.state("capsul-deaf") == "stopped"
    finally:
        if domain.isActive():
            domain.destroy()
        domain.undefine()
