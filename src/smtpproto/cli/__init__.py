"""The ``smtpproto`` command line: ``send``, ``probe``, ``explain``, ``serve``.

``main`` parses and dispatches, ``common`` holds what the sub-commands share (exit
codes, ``CLIError``); the sub-commands drive the blocking client and the built-in
server, never the engine directly.
"""
