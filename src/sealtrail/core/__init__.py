"""The pure core: no I/O, no clock, no environment. Everything an offline verifier needs."""
