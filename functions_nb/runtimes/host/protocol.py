"""The frames every shared host speaks (see docs/host-protocol.md): one header, named codes."""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import NamedTuple

#: ``u32 body length | u32 request id | u8 code``, little-endian, in both directions.
HEADER = struct.Struct("<IIB")
#: The hello's request id (the host's first reply, status READY).
HELLO_ID = 0


class Op(IntEnum):
    """Operations every host understands (a runtime's own start at :data:`FIRST_OWN`)."""

    LOAD = 1
    CALL = 2
    CANCEL = 3
    UNLOAD = 4
    PING = 5


class Status(IntEnum):
    """Reply statuses every host uses (a runtime's own start at :data:`FIRST_OWN`)."""

    OK = 0
    ERROR = 1
    INTERRUPTED = 2
    MEMORY = 3
    BAD_ARGS = 4
    HOST_ERROR = 5
    GONE = 6
    READY = 7
    LIMIT = 8
    #: Parent-side only: the host died with the request outstanding (body: why).
    DIED = 255


class CancelReason(IntEnum):
    ABORT = 1
    TIMEOUT = 2


#: The first operation / status code a runtime may define for itself.
FIRST_OWN = 16

CANCEL_BODY = struct.Struct("<IB")
U32 = struct.Struct("<I")


class Reply(NamedTuple):
    """A host's answer to one request."""

    status: int
    body: bytes


def frame(request_id: int, code: int, body: bytes = b"") -> bytes:
    """One whole frame."""
    return HEADER.pack(len(body), request_id, code) + body


def cancel_frame(target_id: int, reason: CancelReason) -> bytes:
    """A CANCEL request for ``target_id`` (it has no reply of its own)."""
    return frame(target_id, Op.CANCEL, CANCEL_BODY.pack(target_id, reason))
