"""Traitlets configuration of the server extension (``c.FunctionsNB.*`` in jupyter_server_config)."""

from __future__ import annotations

from traitlets import Float, Int, Unicode, default
from traitlets.config import Configurable

from ..config import Ceilings, default_store_url

#: Largest ``tier_retries`` of one tier over HTTP (each retry may wait up to 5 s).
MAX_TIER_RETRIES = 10

class FunctionsNB(Configurable):
    """Settings of the functions-nb REST API served by Jupyter Server."""

    store = Unicode(help="Store URL of the functions (default: $FUNCTIONS_NB_STORE or "
                         "~/.functions-nb/store).").tag(config=True)
    max_body_bytes = Int(1024 * 1024, help="Largest request body accepted, in bytes (413 above)."
                         ).tag(config=True)
    rate_limit = Float(20.0, help="Requests per second allowed per identity (token bucket refill; "
                       "keyed by the user, or by the token for token logins)."
                       ).tag(config=True)
    rate_burst = Int(40, help="Requests an identity may make at once before the rate limit applies."
                     ).tag(config=True)
    max_json_depth = Int(64, help="Deepest nesting of arrays and objects in a JSON body (400 "
                                  "deeper).").tag(config=True)
    sql_timeout = Float(10.0, help="Seconds a POST sql query may run before it is interrupted."
                        ).tag(config=True)
    sql_memory_mb = Int(256, help="DuckDB memory limit of a POST sql query, in MB.").tag(config=True)
    sql_threads = Int(1, help="DuckDB threads of a POST sql query.").tag(config=True)
    max_memory_mb = Int(Ceilings().memory_mb, help="Largest memory_mb a deploy may ask for "
                        "(SDK: Ceilings.memory_mb).").tag(config=True)
    max_timeout = Float(Ceilings().timeout, help="Largest code-tier timeout of a deploy or a call, "
                        "in seconds (SDK: Ceilings.timeout).").tag(config=True)
    max_tier_timeout = Float(Ceilings().tier_timeout, help="Largest timeout of another tier or of "
                             "a whole cascade, in seconds (SDK: Ceilings.tier_timeout)."
                             ).tag(config=True)

    def ceilings(self) -> Ceilings:
        """The limit ceilings for the API's ``Functions(ceilings=...)``; the SDK checks them."""
        return Ceilings(memory_mb=self.max_memory_mb, timeout=self.max_timeout,
                        tier_timeout=self.max_tier_timeout)

    @default("store")
    def _default_store(self) -> str:
        return default_store_url()
