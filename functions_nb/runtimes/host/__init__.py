"""The machinery every shared runtime host uses, once: the spawner, the framed channel, the
watchdog, the host process, the shared-host runtime base and the sandbox-profile builder.
The wire format is written down in docs/host-protocol.md."""

from .channel import Channel, ChannelClosed
from .process import HostDied, HostProcess, Pipes, signal_name
from .protocol import FIRST_OWN, CancelReason, Op, Reply, Status
from .runtime import SharedHostRuntime
from .sandbox import Launch, SandboxProfile, launch, probe
from .watchdog import Watch

__all__ = ["Channel", "ChannelClosed", "HostDied", "HostProcess", "Pipes", "signal_name",
           "FIRST_OWN", "CancelReason", "Op", "Reply", "Status", "SharedHostRuntime",
           "Launch", "SandboxProfile", "launch", "probe", "Watch"]
