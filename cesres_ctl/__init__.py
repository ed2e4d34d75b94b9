"""cesres-ctl: provision CÉCI Slurm clusters for CESReS and drive its training runs."""

__version__ = "0.1.0"
