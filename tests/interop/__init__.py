"""Interop tests against real SMTP peers on 127.0.0.1 (aiosmtpd, smtp-sink, Exim 4)."""
