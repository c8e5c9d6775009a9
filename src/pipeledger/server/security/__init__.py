"""Who may do what on a pipeledger server (see ``docs/server.md``, "Security").

* :mod:`.principal`: :class:`Principal` (who a request comes from) and :class:`Role`;
* authentication: API keys and passwords, checked against the store's ``principals`` and
  ``api_keys`` tables (hashes only);
* authorization: every route's rule, checked against the caller's role in the project of every
  object the request touches (:mod:`.policy`);
* the audit log of every write and every denied request (``audit_events``).
"""

from pipeledger.server.security.principal import ANONYMOUS, Principal, Role

__all__ = ["ANONYMOUS", "Principal", "Role"]
