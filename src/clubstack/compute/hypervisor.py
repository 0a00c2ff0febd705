"""The one module that talks to libvirt (libvirt-python).

Everything a capsul needs from a host goes through :class:`Hypervisor`: capacity, domain
type detection, disk overlays and the cloud-init seed as volumes of a libvirt storage pool
(so remote ``qemu+ssh://`` hosts work the same as the local one), domain definition from
XML built with ElementTree, power actions, state, addresses, raw counters for the graphs
and the serial console log. No Flask, no database: plain values in, plain values out.
"""

from __future__ import annotations

import contextlib
import ipaddress
import queue
import re
import subprocess
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from defusedxml import ElementTree as SafeET

from clubstack.compute.errors import ConsoleBusy, HostDownError, HypervisorError

try:
    import libvirt
except ImportError:  # the `compute` extra is not installed: the suite runs, no host connects
    libvirt = None

METADATA_NS = "https://clubstack.org/ns/compute/1"
QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
METADATA_PREFIX = "clubstack"
DOMAIN_PREFIX = "capsul-"

_errors_silenced = threading.Lock()
_silenced = False


def _silence_libvirt_stderr() -> None:
    """libvirt prints every error to stderr by default; we raise typed errors instead."""
    global _silenced
    with _errors_silenced:
        if not _silenced:
            libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
            _silenced = True


# --- values -------------------------------------------------------------------------

# virDomainState values (stable libvirt ABI), so this table needs no libvirt import.
STATE_NAMES = {
    0: "unknown",  # VIR_DOMAIN_NOSTATE
    1: "running",  # VIR_DOMAIN_RUNNING
    2: "running",  # VIR_DOMAIN_BLOCKED: idle vCPU, running as far as a member cares
    3: "paused",  # VIR_DOMAIN_PAUSED
    4: "stopping",  # VIR_DOMAIN_SHUTDOWN
    5: "stopped",  # VIR_DOMAIN_SHUTOFF
    6: "crashed",  # VIR_DOMAIN_CRASHED
    7: "suspended",  # VIR_DOMAIN_PMSUSPENDED
}


@dataclass(frozen=True)
class Capacity:
    vcpus: int
    memory_mib: int
    disk_gib: int  # free space in the storage pool
    used_vcpus: int = 0
    used_memory_mib: int = 0


@dataclass(frozen=True)
class DomainSpec:
    """What a capsul's domain is made of. Names are checked before they get here."""

    name: str
    uuid: str
    capsul_id: str
    owner_id: str
    vcpus: int
    memory_mib: int
    disk_path: str
    seed_path: str
    console_log: str
    domain_type: str = "kvm"
    network: str = "none"  # none | user | network:NAME | bridge:NAME
    # user networking only: QEMU forwards this host TCP port (on ssh_address) to the guest's
    # port 22, the one way in to a guest behind user-mode NAT
    ssh_port: int | None = None
    ssh_address: str = "127.0.0.1"
    kernel: str | None = None  # direct kernel boot (tiny test guest, netboot images)
    initrd: str | None = None
    cmdline: str | None = None
    extra_metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DomainInfo:
    name: str
    uuid: str
    state: str
    capsul_id: str | None  # None: not one of ours (no clubstack metadata)
    owner_id: str | None


# --- pure builders -------------------------------------------------------------------

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def domain_xml(spec: DomainSpec) -> str:
    """The libvirt domain XML for a capsul, built with ElementTree."""
    for value, what in ((spec.name, "domain name"),):
        if not NAME_RE.match(value):
            raise HypervisorError(f"invalid {what}: {value!r}")
    dom = ET.Element("domain", type=spec.domain_type)
    ET.SubElement(dom, "name").text = spec.name
    ET.SubElement(dom, "uuid").text = spec.uuid
    meta = ET.SubElement(dom, "metadata")
    capsul = ET.SubElement(
        meta,
        f"{{{METADATA_NS}}}capsul",
        {"id": spec.capsul_id, "owner": spec.owner_id, **spec.extra_metadata},
    )
    capsul.tail = None
    ET.SubElement(dom, "memory", unit="MiB").text = str(spec.memory_mib)
    ET.SubElement(dom, "currentMemory", unit="MiB").text = str(spec.memory_mib)
    ET.SubElement(dom, "vcpu", placement="static").text = str(spec.vcpus)
    os_el = ET.SubElement(dom, "os")
    ET.SubElement(os_el, "type", arch="x86_64", machine="pc").text = "hvm"
    if spec.kernel:
        ET.SubElement(os_el, "kernel").text = spec.kernel
        if spec.initrd:
            ET.SubElement(os_el, "initrd").text = spec.initrd
        if spec.cmdline:
            ET.SubElement(os_el, "cmdline").text = spec.cmdline
    else:
        ET.SubElement(os_el, "boot", dev="hd")
    features = ET.SubElement(dom, "features")
    ET.SubElement(features, "acpi")
    ET.SubElement(features, "apic")
    if spec.domain_type == "kvm":
        ET.SubElement(dom, "cpu", mode="host-passthrough")
    ET.SubElement(dom, "clock", offset="utc")
    ET.SubElement(dom, "on_poweroff").text = "destroy"
    ET.SubElement(dom, "on_reboot").text = "restart"
    ET.SubElement(dom, "on_crash").text = "destroy"
    devices = ET.SubElement(dom, "devices")
    disk = ET.SubElement(devices, "disk", type="file", device="disk")
    ET.SubElement(disk, "driver", name="qemu", type="qcow2", discard="unmap")
    ET.SubElement(disk, "source", file=spec.disk_path)
    ET.SubElement(disk, "target", dev="vda", bus="virtio")
    seed = ET.SubElement(devices, "disk", type="file", device="disk")
    ET.SubElement(seed, "driver", name="qemu", type="raw")
    ET.SubElement(seed, "source", file=spec.seed_path)
    ET.SubElement(seed, "target", dev="vdb", bus="virtio")
    ET.SubElement(seed, "readonly")
    if spec.network == "user" and spec.ssh_port:
        _add_user_net_with_forward(dom, spec.ssh_address, spec.ssh_port)
    else:
        _add_interface(devices, spec.network)
    serial = ET.SubElement(devices, "serial", type="pty")
    ET.SubElement(serial, "log", file=spec.console_log, append="on")
    ET.SubElement(serial, "target", port="0")
    console = ET.SubElement(devices, "console", type="pty")
    ET.SubElement(console, "target", type="serial", port="0")
    ET.SubElement(devices, "memballoon", model="virtio")
    ET.register_namespace(METADATA_PREFIX, METADATA_NS)
    ET.register_namespace("qemu", QEMU_NS)
    return ET.tostring(dom, encoding="unicode")


def _add_user_net_with_forward(dom: ET.Element, address: str, port: int) -> None:
    """User-mode networking with a host port forwarded to the guest's SSH port.

    libvirt 9 forwards ports of user-mode interfaces only with the passt backend, which
    Debian 12 hosts rarely have; QEMU's own user networking (slirp) does it with
    ``hostfwd``, passed through libvirt's documented qemu:commandline element.
    """
    try:  # an IP literal, nothing that could add options to QEMU's -netdev
        ipaddress.ip_address(address)
    except ValueError:
        raise HypervisorError(f"invalid SSH forward address {address!r}") from None
    if not 1 <= int(port) <= 65535:
        raise HypervisorError(f"invalid SSH forward port {port!r}")
    line = ET.SubElement(dom, f"{{{QEMU_NS}}}commandline")
    for arg in (
        "-netdev",
        f"user,id=clubstack-net0,hostfwd=tcp:{address}:{int(port)}-:22",
        "-device",
        f"virtio-net-pci,netdev=clubstack-net0,bus=pci.0,addr={FORWARD_NIC_SLOT}",
    ):
        ET.SubElement(line, f"{{{QEMU_NS}}}arg", value=arg)


# libvirt assigns PCI slots from 0x2 up to the devices it knows; the NIC it does not know
# about takes a slot far above them.
FORWARD_NIC_SLOT = "0x1f"
HOSTFWD_RE = re.compile(r"hostfwd=tcp:([0-9a-fA-F.:]*):(\d+)-:22\b")


def ssh_forward(xml: str) -> tuple[str, int] | None:
    """(address, port) of the SSH port forward in a domain's XML, or None."""
    root = SafeET.fromstring(xml)
    for arg in root.iterfind(f"{{{QEMU_NS}}}commandline/{{{QEMU_NS}}}arg"):
        match = HOSTFWD_RE.search(arg.get("value", ""))
        if match:
            return match.group(1) or "0.0.0.0", int(match.group(2))  # noqa: S104 - QEMU's default
    return None


def _add_interface(devices: ET.Element, network: str) -> None:
    kind, _, source = network.partition(":")
    if kind == "none":
        return
    if kind == "user":
        iface = ET.SubElement(devices, "interface", type="user")
    elif kind == "network" and source:
        iface = ET.SubElement(devices, "interface", type="network")
        ET.SubElement(iface, "source", network=source)
    elif kind == "bridge" and source:
        iface = ET.SubElement(devices, "interface", type="bridge")
        ET.SubElement(iface, "source", bridge=source)
    else:
        raise HypervisorError(f"unknown network setting {network!r}")
    ET.SubElement(iface, "model", type="virtio")


def parse_metadata(xml: str) -> tuple[str | None, str | None]:
    """(capsul id, owner id) from a domain's XML, or (None, None) when it is not ours."""
    root = SafeET.fromstring(xml)
    el = root.find(f"metadata/{{{METADATA_NS}}}capsul")
    if el is None:
        return None, None
    return el.get("id"), el.get("owner")


def cloud_config(hostname: str, ssh_keys: list[str]) -> str:
    """The #cloud-config user-data: hostname and the member's SSH keys."""
    body = {
        "hostname": hostname,
        "manage_etc_hosts": True,
        "ssh_authorized_keys": list(ssh_keys),
        "ssh_pwauth": False,
    }
    return "#cloud-config\n" + yaml.safe_dump(body, default_flow_style=False, width=10_000)


def meta_data(instance_id: str, hostname: str) -> str:
    return yaml.safe_dump(
        {"instance-id": instance_id, "local-hostname": hostname}, default_flow_style=False
    )


def build_seed_iso(path: Path, *, instance_id: str, hostname: str, ssh_keys: list[str]) -> None:
    """Write a NoCloud seed (ISO 9660 labelled cidata) with genisoimage."""
    with tempfile.TemporaryDirectory(prefix="seed-") as tmp:
        src = Path(tmp)
        (src / "user-data").write_text(cloud_config(hostname, ssh_keys))
        (src / "meta-data").write_text(meta_data(instance_id, hostname))
        subprocess.run(
            [
                "genisoimage",
                "-quiet",
                "-output",
                str(path),
                "-volid",
                "cidata",
                "-joliet",
                "-rock",
                str(src / "user-data"),
                str(src / "meta-data"),
            ],
            check=True,
            capture_output=True,
        )


def volume_xml(
    name: str,
    capacity_bytes: int,
    fmt: str,
    backing: str | None = None,
    backing_format: str = "qcow2",
) -> str:
    vol = ET.Element("volume")
    ET.SubElement(vol, "name").text = name
    ET.SubElement(vol, "capacity", unit="bytes").text = str(capacity_bytes)
    target = ET.SubElement(vol, "target")
    ET.SubElement(target, "format", type=fmt)
    perms = ET.SubElement(target, "permissions")
    ET.SubElement(perms, "mode").text = "0644"
    if backing:
        store = ET.SubElement(vol, "backingStore")
        ET.SubElement(store, "path").text = backing
        ET.SubElement(store, "format", type=backing_format)
    return ET.tostring(vol, encoding="unicode")


def pool_xml(name: str, path: str) -> str:
    pool = ET.Element("pool", type="dir")
    ET.SubElement(pool, "name").text = name
    target = ET.SubElement(pool, "target")
    ET.SubElement(target, "path").text = path
    perms = ET.SubElement(target, "permissions")
    ET.SubElement(perms, "mode").text = "0755"
    return ET.tostring(pool, encoding="unicode")


HOSTKEY_BLOCK = re.compile(
    r"-----BEGIN SSH HOST KEY FINGERPRINTS-----\s*(.*?)-----END SSH HOST KEY FINGERPRINTS-----",
    re.S,
)


def host_key_fingerprints(console: str) -> list[str]:
    """SSH host key fingerprints that cloud-init prints on the console (last boot wins)."""
    blocks = HOSTKEY_BLOCK.findall(console)
    if not blocks:
        return []
    lines = []
    for line in blocks[-1].splitlines():
        # cloud-init prefixes each line with "ci-info: " on some images
        line = line.strip().removeprefix("ci-info:").strip()
        if line:
            lines.append(line)
    return lines


# --- the connection -------------------------------------------------------------------


class Hypervisor:
    """One libvirt connection to one host, with the storage pool capsuls live in."""

    def __init__(
        self,
        uri: str,
        *,
        pool_name: str = "clubstack",
        pool_path: str = "/var/lib/libvirt/images/clubstack",
    ) -> None:
        if libvirt is None:
            raise HostDownError(
                detail=f"cannot connect to {uri}: libvirt-python is not installed "
                "(pip install 'clubstack[compute]', which needs Debian's libvirt-dev)"
            )
        _silence_libvirt_stderr()
        self.uri = uri
        self.pool_name = pool_name
        self.pool_path = pool_path
        try:
            self.conn = libvirt.open(uri)
        except libvirt.libvirtError as exc:
            raise HostDownError(
                detail=f"cannot connect to {uri}: {exc.get_error_message()}"
            ) from exc

    def close(self) -> None:
        with contextlib.suppress(libvirt.libvirtError):
            self.conn.close()

    def __enter__(self) -> Hypervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # host ---------------------------------------------------------------------------

    def alive(self) -> bool:
        try:
            return bool(self.conn.isAlive()) and self.conn.getLibVersion() > 0
        except libvirt.libvirtError:
            return False

    def pool(self) -> libvirt.virStoragePool:
        """The capsuls' storage pool, defined and started if needed."""
        try:
            pool = self.conn.storagePoolLookupByName(self.pool_name)
        except libvirt.libvirtError:
            try:
                pool = self.conn.storagePoolDefineXML(pool_xml(self.pool_name, self.pool_path))
                pool.build(0)
            except libvirt.libvirtError as exc:
                raise HypervisorError(f"cannot create storage pool: {exc}") from exc
        if not pool.isActive():
            pool.create(0)
            pool.setAutostart(True)
        return pool

    def remove_pool(self) -> None:
        """Stop and forget the pool (its directory and files stay)."""
        with contextlib.suppress(libvirt.libvirtError):
            pool = self.conn.storagePoolLookupByName(self.pool_name)
            if pool.isActive():
                pool.destroy()
            pool.undefine()

    def check_network(self, network: str) -> None:
        """Refuse, saying what to do, when a ``network:NAME`` setting names no active network.

        libvirt's ``default`` network is often defined but inactive (it needs dnsmasq), and a
        capsul on an inactive network fails only when it starts.
        """
        kind, _, name = network.partition(":")
        if kind != "network":
            return
        try:
            net = self.conn.networkLookupByName(name)
        except libvirt.libvirtError:
            raise HypervisorError(
                f"libvirt network {name!r} does not exist on {self.uri}: define it "
                f"(virsh -c {self.uri} net-define FILE), or use --network user "
                "(QEMU's user networking) for a single machine"
            ) from None
        try:
            active = bool(net.isActive())
        except libvirt.libvirtError as exc:
            raise HypervisorError(
                f"cannot read network {name!r}: {exc.get_error_message()}"
            ) from exc
        if not active:
            raise HypervisorError(
                f"libvirt network {name!r} is not active on {self.uri}: start it with "
                f"`virsh -c {self.uri} net-start {name}` and "
                f"`virsh -c {self.uri} net-autostart {name}` (libvirt networks need dnsmasq: "
                "apt-get install dnsmasq-base), or use --network user (QEMU's user networking) "
                "for a single machine"
            )

    def capacity(self) -> Capacity:
        info = self.conn.getInfo()  # [model, memory MiB, cpus, ...]
        pool = self.pool()
        pool.refresh(0)
        _state, _cap, _alloc, available = pool.info()
        used_cpu = used_mem = 0
        for dom in self.conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
            _st, _max, mem_kib, vcpus, _t = dom.info()
            used_cpu += vcpus
            used_mem += mem_kib // 1024
        return Capacity(
            vcpus=info[2],
            memory_mib=info[1],
            disk_gib=available // 2**30,
            used_vcpus=used_cpu,
            used_memory_mib=used_mem,
        )

    def supports(self, domain_type: str) -> bool:
        caps = SafeET.fromstring(self.conn.getCapabilities())
        return any(
            d.get("type") == domain_type for d in caps.iterfind("guest/arch[@name='x86_64']/domain")
        )

    def detect_domain_type(
        self, kernel: str, initrd: str | None = None, timeout: float = 6.0
    ) -> str:
        """'kvm' if a KVM guest really boots a kernel here, else 'qemu' (TCG emulation).

        /dev/kvm can exist and accept a VM that never gets past the BIOS, so we boot
        ``kernel`` in a transient KVM domain and wait for it to print on the console.
        """
        if not self.supports("kvm"):
            return "qemu"
        name = f"clubstack-probe-{int(time.time() * 1000) % 10**9}"
        log = f"{self.pool_path}/{name}.log"
        dom = ET.Element("domain", type="kvm")
        ET.SubElement(dom, "name").text = name
        ET.SubElement(dom, "memory", unit="MiB").text = "128"
        ET.SubElement(dom, "vcpu").text = "1"
        os_el = ET.SubElement(dom, "os")
        ET.SubElement(os_el, "type", arch="x86_64", machine="pc").text = "hvm"
        ET.SubElement(os_el, "kernel").text = kernel
        if initrd:
            ET.SubElement(os_el, "initrd").text = initrd
        ET.SubElement(os_el, "cmdline").text = "console=ttyS0 panic=-1"
        ET.SubElement(dom, "cpu", mode="host-passthrough")
        ET.SubElement(dom, "on_reboot").text = "destroy"
        devices = ET.SubElement(dom, "devices")
        serial = ET.SubElement(devices, "serial", type="pty")
        ET.SubElement(serial, "log", file=log, append="off")
        ET.SubElement(serial, "target", port="0")
        self.pool()
        booted = False
        try:
            try:
                domain = self.conn.createXML(ET.tostring(dom, encoding="unicode"), 0)
            except libvirt.libvirtError as exc:
                # A kernel that is not on the host says nothing about KVM. The default probe
                # kernel is the newest in /boot here, which a remote host may not have.
                missing = [p for p in (kernel, initrd) if p and p in exc.get_error_message()]
                if missing:
                    raise HypervisorError(
                        f"The probe kernel {missing[0]} cannot be read on the host.",
                        detail=f"cannot read the probe kernel {missing[0]} on {self.uri} "
                        f"({exc.get_error_message()}): give --probe-kernel (and "
                        "--probe-initrd) with files on the host",
                    ) from exc
                return "qemu"
            try:
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    text = self.read_volume_text(f"{name}.log")
                    if "Linux version" in text:
                        booted = True
                        break
                    time.sleep(0.25)
            finally:
                with contextlib.suppress(libvirt.libvirtError):
                    domain.destroy()
        finally:
            # QEMU may have opened (created) the log before a failed start; never leave it
            self._delete_volume(f"{name}.log")
        return "kvm" if booted else "qemu"

    # volumes ------------------------------------------------------------------------

    def _volume(self, name: str) -> libvirt.virStorageVol | None:
        try:
            return self.pool().storageVolLookupByName(name)
        except libvirt.libvirtError:
            return None

    def _delete_volume(self, name: str) -> bool:
        pool = self.pool()
        with contextlib.suppress(libvirt.libvirtError):
            pool.refresh(0)
        vol = self._volume(name)
        if vol is None:
            return False
        vol.delete(0)
        return True

    def create_overlay(self, name: str, base_path: str, size_gib: int) -> str:
        """A qcow2 copy-on-write overlay of ``base_path``, ``size_gib`` big; idempotent."""
        existing = self._volume(name)
        if existing is not None:
            return existing.path()
        xml = volume_xml(name, size_gib * 2**30, "qcow2", backing=base_path)
        try:
            return self.pool().createXML(xml, 0).path()
        except libvirt.libvirtError as exc:
            raise HypervisorError(f"cannot create disk {name}: {exc.get_error_message()}") from exc

    def upload_volume(self, name: str, data: bytes) -> str:
        """Store ``data`` as a raw volume (replacing an old one): the cloud-init seed."""
        self._delete_volume(name)
        vol = self.pool().createXML(volume_xml(name, len(data), "raw"), 0)
        stream = self.conn.newStream(0)
        vol.upload(stream, 0, len(data), 0)
        view = memoryview(data)
        sent = 0
        while sent < len(data):
            sent += stream.send(bytes(view[sent : sent + (1 << 20)]))
        stream.finish()
        return vol.path()

    def create_seed(
        self, name: str, *, instance_id: str, hostname: str, ssh_keys: list[str]
    ) -> str:
        with tempfile.TemporaryDirectory(prefix="clubstack-seed-") as tmp:
            iso = Path(tmp) / "seed.iso"
            build_seed_iso(iso, instance_id=instance_id, hostname=hostname, ssh_keys=ssh_keys)
            return self.upload_volume(name, iso.read_bytes())

    def read_volume_text(self, name: str, limit: int = 256 * 1024) -> str:
        """The tail of a file in the pool (the console log) through a libvirt stream."""
        pool = self.pool()
        with contextlib.suppress(libvirt.libvirtError):
            pool.refresh(0)
        vol = self._volume(name)
        if vol is None:
            return ""
        try:
            _type, capacity, _alloc = vol.info()
            if capacity == 0:
                return ""
            offset = max(0, capacity - limit)
            stream = self.conn.newStream(0)
            vol.download(stream, offset, capacity - offset, 0)
            chunks = []
            while True:
                chunk = stream.recv(1 << 16)
                if not chunk or chunk == -2:
                    break
                chunks.append(chunk)
            stream.finish()
        except libvirt.libvirtError:
            return ""
        return b"".join(chunks).decode("utf-8", "replace")

    # domains ------------------------------------------------------------------------

    def define(self, spec: DomainSpec) -> None:
        try:
            self.conn.defineXML(domain_xml(spec))
        except libvirt.libvirtError as exc:
            raise HypervisorError(f"cannot define {spec.name}: {exc.get_error_message()}") from exc

    def lookup(self, name: str) -> libvirt.virDomain | None:
        try:
            return self.conn.lookupByName(name)
        except libvirt.libvirtError:
            return None

    def _domain(self, name: str) -> libvirt.virDomain:
        dom = self.lookup(name)
        if dom is None:
            raise HypervisorError(
                f"no domain {name} on its host", detail=f"no domain {name} on {self.uri}"
            )
        return dom

    def state(self, name: str) -> str:
        dom = self.lookup(name)
        if dom is None:
            return "missing"
        return STATE_NAMES.get(dom.state()[0], "unknown")

    def start(self, name: str) -> None:
        dom = self._domain(name)
        if not dom.isActive():
            try:
                dom.create()
            except libvirt.libvirtError as exc:
                raise HypervisorError(f"cannot start {name}: {exc.get_error_message()}") from exc

    def stop(self, name: str, timeout: float = 60.0) -> bool:
        """Ask the guest to shut down (ACPI); force it off after ``timeout`` seconds.

        Returns True when the guest stopped by itself, False when it had to be forced.
        """
        dom = self._domain(name)
        if not dom.isActive():
            return True
        with contextlib.suppress(libvirt.libvirtError):
            dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not dom.isActive():
                return True
            time.sleep(0.2)
        self.force_off(name)
        return False

    def request_shutdown(self, name: str) -> None:
        """Press the ACPI power button and return at once."""
        dom = self._domain(name)
        if dom.isActive():
            with contextlib.suppress(libvirt.libvirtError):
                dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)

    def force_off(self, name: str) -> None:
        dom = self._domain(name)
        if dom.isActive():
            with contextlib.suppress(libvirt.libvirtError):
                dom.destroy()

    def reboot(self, name: str) -> None:
        dom = self._domain(name)
        try:
            dom.reboot(libvirt.VIR_DOMAIN_REBOOT_ACPI_POWER_BTN)
        except libvirt.libvirtError as exc:
            raise HypervisorError(f"cannot reboot {name}: {exc.get_error_message()}") from exc

    def reset(self, name: str) -> None:
        self._domain(name).reset(0)

    def destroy(self, name: str, volumes: list[str]) -> None:
        """Force off, undefine, and delete the capsul's disk, seed and log. Idempotent."""
        dom = self.lookup(name)
        if dom is not None:
            if dom.isActive():
                with contextlib.suppress(libvirt.libvirtError):
                    dom.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                dom.undefineFlags(
                    libvirt.VIR_DOMAIN_UNDEFINE_NVRAM | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                )
        for vol in volumes:
            with contextlib.suppress(libvirt.libvirtError):
                self._delete_volume(vol)

    def list_domains(self) -> list[DomainInfo]:
        out = []
        for dom in self.conn.listAllDomains(0):
            try:
                capsul_id, owner_id = parse_metadata(dom.XMLDesc(0))
                state = STATE_NAMES.get(dom.state()[0], "unknown")
            except libvirt.libvirtError:
                continue  # vanished while we looked
            out.append(
                DomainInfo(
                    name=dom.name(),
                    uuid=dom.UUIDString(),
                    state=state,
                    capsul_id=capsul_id,
                    owner_id=owner_id,
                )
            )
        return out

    def addresses(self, name: str) -> list[str]:
        """IP addresses from DHCP leases, then the guest agent, then the ARP table."""
        dom = self.lookup(name)
        if dom is None or not dom.isActive():
            return []
        for source in (
            libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE,
            libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT,
            libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP,
        ):
            try:
                ifaces = dom.interfaceAddresses(source, 0)
            except libvirt.libvirtError:
                continue
            addrs = [
                a["addr"] for iface in (ifaces or {}).values() for a in (iface.get("addrs") or [])
            ]
            if addrs:
                return addrs
        return []

    def ssh_forward(self, name: str) -> tuple[str, int] | None:
        """(host address, port) QEMU forwards to the guest's SSH port (user networking)."""
        dom = self.lookup(name)
        if dom is None:
            return None
        try:
            return ssh_forward(dom.XMLDesc(0))
        except libvirt.libvirtError:
            return None

    def free_forward_port(self, low: int, high: int) -> int:
        """The lowest port in [low, high] that no domain on this host forwards already."""
        used = set()
        for dom in self.conn.listAllDomains(0):
            with contextlib.suppress(libvirt.libvirtError):
                forward = ssh_forward(dom.XMLDesc(0))
                if forward:
                    used.add(forward[1])
        for port in range(low, high + 1):
            if port not in used:
                return port
        raise HypervisorError(
            "The host has no free SSH port for a new capsul.",
            detail=f"no free SSH forward port in {low}-{high} on {self.uri}",
        )

    def open_console(self, name: str) -> ConsoleStream:
        """The guest's serial console as a byte stream (see :class:`ConsoleStream`)."""
        return ConsoleStream(self.uri, name, pool_name=self.pool_name, pool_path=self.pool_path)

    def counters(self) -> dict[str, dict[str, int]]:
        """Raw cumulative counters of every running domain, by name, in one call."""
        flags = (
            libvirt.VIR_DOMAIN_STATS_CPU_TOTAL
            | libvirt.VIR_DOMAIN_STATS_BALLOON
            | libvirt.VIR_DOMAIN_STATS_BLOCK
            | libvirt.VIR_DOMAIN_STATS_INTERFACE
            | libvirt.VIR_DOMAIN_STATS_VCPU
        )
        out: dict[str, dict[str, int]] = {}
        try:
            records = self.conn.getAllDomainStats(
                flags, libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE
            )
        except libvirt.libvirtError as exc:
            raise HostDownError(detail=f"{self.uri}: {exc.get_error_message()}") from exc
        for dom, stats in records:
            out[dom.name()] = summarize_counters(stats)
        return out

    def console_log(self, name: str, limit: int = 256 * 1024) -> str:
        return self.read_volume_text(console_volume(name), limit)

    def wait_for_console(self, name: str, needle: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.console_log(name)
            if needle in text:
                return text
            time.sleep(0.25)
        raise TimeoutError(f"{needle!r} not on the console of {name} after {timeout}s:\n{text}")


class ConsoleStream:
    """An interactive session on a domain's serial console, through libvirt's console stream.

    It has a libvirt connection of its own (a console lives for minutes; the connection of a
    request does not) and a blocking stream read by a thread of its own, which queues what
    the guest prints; a non-blocking stream would need libvirt's process-wide event loop.
    libvirt lets one client at a time hold a domain's console (VIR_DOMAIN_CONSOLE_SAFE,
    without FORCE): a second one is refused with :class:`ConsoleBusy` instead of cutting off
    the first.
    """

    def __init__(self, uri: str, name: str, **kwargs: str) -> None:
        self.hv = Hypervisor(uri, **kwargs)
        self.closed = threading.Event()
        self.output: queue.Queue[bytes | None] = queue.Queue()
        try:
            dom = self.hv.lookup(name)
            if dom is None or not dom.isActive():
                raise HypervisorError(f"{name} is not running")
            self.stream = self.hv.conn.newStream(0)
            try:
                dom.openConsole(None, self.stream, libvirt.VIR_DOMAIN_CONSOLE_SAFE)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_OPERATION_FAILED:
                    raise ConsoleBusy() from exc
                raise HypervisorError(
                    f"cannot open the console of {name}: {exc.get_error_message()}"
                ) from exc
        except BaseException:
            self.hv.close()
            raise
        self.reader = threading.Thread(target=self._pump, name=f"console-{name}", daemon=True)
        self.reader.start()

    def _pump(self) -> None:
        try:
            while not self.closed.is_set():
                data = self.stream.recv(1 << 16)
                if not data or data == -2:  # end: the domain stopped
                    break
                self.output.put(bytes(data))
        except libvirt.libvirtError:
            pass  # aborted by close(), or the connection broke
        finally:
            self.closed.set()
            self.output.put(None)

    def read(self, timeout: float = 0.0) -> bytes | None:
        """What the guest printed (b"" if nothing within ``timeout``); None once it ended."""
        chunks: list[bytes] = []
        try:
            item = self.output.get(timeout=timeout) if timeout else self.output.get_nowait()
            while item is not None:
                chunks.append(item)
                item = self.output.get_nowait()
        except queue.Empty:
            return b"".join(chunks)
        self.output.put(None)  # keep the end mark for the next call
        return b"".join(chunks) if chunks else None

    def write(self, data: bytes) -> None:
        """Send keystrokes to the guest."""
        if self.closed.is_set():
            raise HypervisorError("the console is closed")
        try:
            view = memoryview(data)
            while view:
                sent = self.stream.send(bytes(view))
                view = view[max(sent, 0) :]
        except libvirt.libvirtError as exc:
            raise HypervisorError(f"console write failed: {exc.get_error_message()}") from exc

    def close(self) -> None:
        if not self.closed.is_set():
            self.closed.set()
            with contextlib.suppress(libvirt.libvirtError):
                self.stream.abort()
        self.reader.join(timeout=5)
        self.hv.close()

    def __enter__(self) -> ConsoleStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def summarize_counters(stats: dict[str, int]) -> dict[str, int]:
    """Sum the per-device counters of getAllDomainStats into the few we graph."""
    out = {
        "cpu_ns": int(stats.get("cpu.time", 0)),
        "vcpus": int(stats.get("vcpu.current", 0)),
        "mem_kib": int(stats.get("balloon.rss") or stats.get("balloon.current", 0)),
        "mem_max_kib": int(stats.get("balloon.maximum", 0)),
        "disk_rd": 0,
        "disk_wr": 0,
        "net_rx": 0,
        "net_tx": 0,
    }
    for i in range(int(stats.get("block.count", 0))):
        out["disk_rd"] += int(stats.get(f"block.{i}.rd.bytes", 0))
        out["disk_wr"] += int(stats.get(f"block.{i}.wr.bytes", 0))
    for i in range(int(stats.get("net.count", 0))):
        out["net_rx"] += int(stats.get(f"net.{i}.rx.bytes", 0))
        out["net_tx"] += int(stats.get(f"net.{i}.tx.bytes", 0))
    return out


def disk_volume(name: str) -> str:
    return f"{name}.qcow2"


def seed_volume(name: str) -> str:
    return f"{name}-seed.iso"


def console_volume(name: str) -> str:
    return f"{name}.console.log"


def capsul_volumes(name: str) -> list[str]:
    return [disk_volume(name), seed_volume(name), console_volume(name)]


@contextlib.contextmanager
def connect(uri: str, **kwargs: str) -> Iterator[Hypervisor]:
    hv = Hypervisor(uri, **kwargs)
    try:
        yield hv
    finally:
        hv.close()
