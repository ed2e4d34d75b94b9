"""Provisioning: ``cesres-ctl setup`` (playbooks/setup.yml) and ``cesres-ctl doctor``."""
