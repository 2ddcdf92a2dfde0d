"""The server engine: ``ServerConnection``, the sans-IO server role (RFC 5321, LMTP).

Strict, bounded command parsing (``commands``), events (``events``), reply builders
(``replies``), states (``states``), limits (``config``) and the AUTH exchange
(``auth``). Built on the wire layer and the SASL verifiers; it never decides policy
(which recipients to accept): whoever drives it does.
"""
