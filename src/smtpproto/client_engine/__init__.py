"""The client engine: ``ClientConnection``, a sans-IO SMTP/ESMTP/LMTP client (h11's shape).

Commands and events are frozen values (``commands``, ``events``); states and their
transition tables are data (``states``); ``connection`` holds the four verbs over one
``session`` state, with the send rules in ``sending`` and the reply rules in
``replies``. Built on the wire layer and the SASL mechanisms; never does I/O
(docs/design.md §2).
"""
