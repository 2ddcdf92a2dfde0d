"""The wire layer: what both roles need to read and write SMTP, and nothing else.

Errors (``errors``), buffer limits (``limits``), escaping of peer text (``text``), the
RFC 5321/6531 grammar (the rules in ``grammar``, the client side in ``abnf``, the
server side in ``parsing``), ``Reply`` and enhanced status codes
(``reply``), what each code means (``codes``), the reply parser twins (``_reply_py`` /
``_speedups``, chosen by ``twins``), the DATA codec twins (``_dataenc_py`` /
``_dataenc_c``, chosen by ``datacodec``) and the ``NEED_DATA`` marker. It imports no
other layer (docs/design.md §1).
"""
