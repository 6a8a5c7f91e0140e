"""The four-tier cascade: code -> generative -> agentic -> human (see engine.py)."""

from __future__ import annotations

from .base import TIERS, Attempt, HumanPending, Tier, TierCall, TierServices

__all__ = ["TIERS", "Attempt", "HumanPending", "Tier", "TierCall", "TierServices"]
