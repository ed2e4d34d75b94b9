"""The local sandbox cluster: its manifest, its daemons and the ``cesres-ctl sandbox`` commands."""
