"""A tiny guest for tests, benchmarks and host smoke tests.

It is built from Debian packages already installed on the machine: a kernel from
/boot (linux-image-cloud-amd64 or linux-image-amd64) and a busybox (busybox-static)
initramfs. Its init loads the virtio and ACPI modules, mounts the cloud-init NoCloud
seed (an ISO 9660 volume labelled ``cidata``), prints the hostname and the SSH keys it
found on the serial console, and then keeps a root shell on the serial console (ttyS0);
the ACPI power button powers it off cleanly, so graceful shutdown and reboot work as on a
real cloud image.

The result is cached (keyed by the kernel and busybox it was built from) in
``$CLUBSTACK_GUEST_CACHE`` or /var/tmp/clubstack-guest-cache: a world-traversable
place, because QEMU runs as the ``libvirt-qemu`` user and cannot enter /root.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

MARKER = "CLUBSTACK-GUEST"
BUSYBOX = Path("/bin/busybox")
WANTED_MODULES = ("virtio_pci", "virtio_blk", "isofs", "button", "evdev")

# Runs once at boot under busybox init. Plain POSIX shell for the guest, not the host.
RCS = r"""#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
while read -r m; do insmod "/lib/modules/$m" 2>/dev/null; done < /etc/modules-order
mkdir -p /mnt/seed /var/run /var/log
found=""
for i in 1 2 3 4 5 6 7 8 9 10; do
  for d in /dev/vd? /dev/sr?; do
    [ -b "$d" ] || continue
    if mount -t iso9660 -o ro "$d" /mnt/seed 2>/dev/null; then
      if [ -f /mnt/seed/meta-data ]; then found="$d"; break 2; fi
      umount /mnt/seed
    fi
  done
  sleep 0.2
done
if [ -z "$found" ]; then
  echo "@MARKER@ no-seed"
else
  h=$(sed -n 's/^local-hostname: *//p' /mnt/seed/meta-data | head -n 1)
  [ -n "$h" ] && hostname "$h"
  echo "@MARKER@ seed=$found"
  echo "@MARKER@ hostname=$h"
  sed -n 's/^ *- *\(ssh-[a-z0-9-]* .*\)$/\1/p;s/^ *- *\(ecdsa-[a-z0-9-]* .*\)$/\1/p' \
    /mnt/seed/user-data | while read -r k; do echo "@MARKER@ ssh-key=$k"; done
fi
acpid -c /etc/acpi -l /var/log/acpid.log
# "ready" promises the power button works: wait until acpid listens on the input device
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30; do
  p=$(pidof acpid)
  [ -n "$p" ] && ls -l "/proc/$p/fd" 2>/dev/null | grep -q /dev/input/event && break
  sleep 0.1
done
echo "@MARKER@ ready"
"""

# A root shell on the serial console, as a rescue console of a real image gives after login:
# the interactive console (a WebSocket to libvirt's console stream) is tested by typing into it.
INITTAB = """::sysinit:/etc/init.d/rcS
ttyS0::respawn:/bin/sh
::shutdown:/bin/sh -c 'echo @MARKER@ shutting-down; sync'
"""

POWER_BUTTON = """#!/bin/sh
poweroff
"""


@dataclass(frozen=True)
class TinyGuest:
    kernel: Path
    initrd: Path
    disk: Path  # an empty qcow2 base image: the guest runs from its initramfs
    cmdline: str = "console=ttyS0 quiet panic=-1"


def cache_dir() -> Path:
    return Path(os.environ.get("CLUBSTACK_GUEST_CACHE", "/var/tmp/clubstack-guest-cache"))  # noqa: S108


def find_kernel() -> Path:
    kernels = sorted(Path("/boot").glob("vmlinuz-*"))
    # The cloud flavour boots faster (fewer drivers to probe); prefer it when present.
    cloud = [k for k in kernels if "cloud" in k.name]
    chosen = (cloud or kernels)[-1:] if kernels else []
    if not chosen:
        raise FileNotFoundError(
            "no kernel in /boot: apt-get install linux-image-cloud-amd64 (or linux-image-amd64)"
        )
    return chosen[0]


def _module_order(moddir: Path, wanted: tuple[str, ...]) -> list[str]:
    """Module paths (relative to moddir) in load order, dependencies first."""
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        path, _, rest = line.partition(":")
        deps[path] = rest.split()
        by_name[Path(path).name.split(".ko")[0].replace("-", "_")] = path
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for dep in reversed(deps.get(path, [])):
            visit(dep)
        order.append(path)

    for name in wanted:
        if name in by_name:  # built into the kernel otherwise
            visit(by_name[name])
    return order


def _digest(kernel: Path) -> str:
    h = hashlib.sha256()
    for part in (
        str(kernel),
        str(kernel.stat().st_mtime_ns),
        str(BUSYBOX.stat().st_mtime_ns),
        RCS,
        INITTAB,
        POWER_BUTTON,
        ",".join(WANTED_MODULES),
    ):
        h.update(part.encode())
    return h.hexdigest()[:16]


def build(directory: Path | None = None) -> TinyGuest:
    """Build (or reuse from the cache) the tiny guest and return its files."""
    kernel = find_kernel()
    if not BUSYBOX.exists():
        raise FileNotFoundError("no /bin/busybox: apt-get install busybox-static")
    base = (directory or cache_dir()) / _digest(kernel)
    guest = TinyGuest(
        kernel=base / "vmlinuz", initrd=base / "initrd.cpio", disk=base / "base.qcow2"
    )
    if guest.kernel.exists() and guest.initrd.exists() and guest.disk.exists():
        return guest
    base.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(base.parent, 0o755)  # noqa: S103 - QEMU (libvirt-qemu) reads it
    work = Path(tempfile.mkdtemp(prefix="build-", dir=base.parent))
    try:
        _build_into(work, kernel)
        os.chmod(work, 0o755)  # noqa: S103 - QEMU (libvirt-qemu) reads it
        try:
            work.rename(base)
        except OSError:  # another process built it at the same time
            shutil.rmtree(work, ignore_errors=True)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return guest


def _build_into(work: Path, kernel: Path) -> None:
    release = kernel.name.removeprefix("vmlinuz-")
    moddir = Path("/lib/modules") / release
    root = work / "root"
    for sub in (
        "bin",
        "sbin",
        "etc/init.d",
        "etc/acpi/PWRF",
        "proc",
        "sys",
        "dev",
        "mnt",
        "tmp",
        "var/run",
        "var/log",
        "lib/modules",
        "root",
    ):
        (root / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, root / "bin/busybox")
    applets = subprocess.run(
        [str(BUSYBOX), "--list"], check=True, capture_output=True, text=True
    ).stdout.split()
    for applet in applets:
        if applet != "busybox":
            link = root / "bin" / applet
            if not link.exists():
                link.symlink_to("busybox")
    (root / "init").symlink_to("bin/busybox")
    (root / "sbin/init").symlink_to("../bin/busybox")
    order = _module_order(moddir, WANTED_MODULES)
    names = []
    for rel in order:
        target = root / "lib/modules" / Path(rel).name
        shutil.copy2(moddir / rel, target)
        names.append(Path(rel).name)
    (root / "etc/modules-order").write_text("\n".join(names) + "\n")
    scripts = {
        "etc/init.d/rcS": RCS.replace("@MARKER@", MARKER),
        "etc/acpi/PWRF/00000080": POWER_BUTTON,
    }
    for rel, text in scripts.items():
        (root / rel).write_text(text)
        os.chmod(root / rel, 0o755)  # noqa: S103 - scripts inside the guest
    (root / "etc/inittab").write_text(INITTAB.replace("@MARKER@", MARKER))
    (root / "etc/hostname").write_text("tiny\n")
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    with open(work / "initrd.cpio", "wb") as out:
        subprocess.run(
            ["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0"],
            cwd=root,
            input="\n".join(files).encode(),
            stdout=out,
            check=True,
        )
    shutil.rmtree(root)
    shutil.copy2(kernel, work / "vmlinuz")
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", str(work / "base.qcow2"), "64M"], check=True
    )
    for name in ("vmlinuz", "initrd.cpio", "base.qcow2"):
        os.chmod(work / name, 0o644)


def ensure_local_libvirtd(timeout: float = 15.0) -> None:
    """Start virtlogd and libvirtd (without systemd) unless they already answer."""
    import libvirt

    from clubstack.compute.hypervisor import _silence_libvirt_stderr

    _silence_libvirt_stderr()

    def answers() -> bool:
        try:
            libvirt.open("qemu:///system").close()
        except libvirt.libvirtError:
            return False
        return True

    if answers():
        return
    for daemon in ("virtlogd", "libvirtd"):
        if subprocess.run(["pgrep", "-x", daemon], capture_output=True).returncode != 0:
            subprocess.run([f"/usr/sbin/{daemon}", "-d"], check=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers():
            return
        time.sleep(0.2)
    raise RuntimeError("libvirtd did not start answering on qemu:///system")
