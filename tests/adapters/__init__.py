"""One test suite for every client adapter (blocking, asyncio, trio)."""
