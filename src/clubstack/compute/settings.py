"""Settings of the compute service (CLUBSTACK_COMPUTE_*, or [compute] in clubstack.toml)."""

from __future__ import annotations

from pydantic import Field

from clubstack.settings import ServiceSettings, service_config


class ComputeSettings(ServiceSettings):
    model_config = service_config("compute")

    min_credit_hours: int = Field(
        default=24,
        description="A capsul is created only if the member's credit covers this many hours "
        "of the plan (plus what their other capsuls burn).",
    )
    stop_timeout: float = Field(
        default=60.0,
        description="Seconds a guest gets to shut down after the ACPI power button before it "
        "is forced off.",
    )
    default_pool_path: str = Field(
        default="/var/lib/libvirt/images/clubstack",
        description="Folder of the libvirt storage pool for capsul disks on a new host.",
    )
    default_network: str = Field(
        default="network:default",
        description="Network of capsuls on a new host: none, user, network:NAME (a libvirt "
        "network) or bridge:NAME (a host bridge).",
    )
    probe_kernel: str | None = Field(
        default=None,
        description="Kernel (path on the host) booted to test whether KVM really works; "
        "default: the newest /boot/vmlinuz-* of this machine.",
    )
    max_capsuls_per_member: int = Field(
        default=20, description="Capsuls one member may have at a time."
    )
    sample_retention_days: int = Field(
        default=8, description="Days of CPU/memory/disk/network samples kept for the graphs."
    )
    reconcile_mail: bool = Field(
        default=True, description="Mail administrators what the reconcile job could not fix."
    )
    console_time_limit: float = Field(
        default=1800.0,
        description="Seconds an interactive serial console stays open; it is closed then (the "
        "member may open a new one). Each open console holds one web server thread.",
    )
    console_ticket_seconds: float = Field(
        default=30.0,
        description="Seconds the one-time ticket of the capsul page is good for opening the "
        "console.",
    )
    console_max_open: int = Field(
        default=4,
        description="Interactive consoles open at once on the whole site, so consoles never take "
        "all web server threads (keep it below workers x threads).",
    )
    console_max_per_member: int = Field(
        default=2, description="Interactive consoles one member may have open at once."
    )
    ssh_forward_ports: str = Field(
        default="22000-22999",
        pattern=r"^\d{1,5}-\d{1,5}$",
        description="Host ports (low-high) forwarded to capsuls' SSH port on hosts with user "
        "networking; each capsul gets the lowest one free on its host.",
    )
    ssh_forward_address: str = Field(
        default="127.0.0.1",
        description="Host address the SSH forwards of user networking listen on (0.0.0.0 for "
        "all addresses of the host).",
    )
