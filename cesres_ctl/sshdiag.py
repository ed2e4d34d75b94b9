"""What a failed ssh connection means, in one line, from OpenSSH's own messages.

One home for Ansible's unreachable hosts (runner) and the CLI's own ssh and rsync calls (runs.remote).
OpenSSH prints the cause first and generic lines after it; through a ProxyJump gateway the last line
is about the outer connection ("kex_exchange_identification: Connection closed by UNKNOWN port 65535")
and says nothing. So every line is read, and the most specific cause wins.
"""

import re

_CHANGED = re.compile(r"Host key for (\S+) has changed")
_UNKNOWN = re.compile(r"No \S+ host key is known for (\S+) and")
_OFFENDING = re.compile(r"Offending \S+ key in (\S+):(\d+)")
_RESOLVE = re.compile(r"Could not resolve hostname (\S+?):")


def explain(output: str, host: str) -> str | None:
    """One line for a known ssh failure in `output` (ssh's stderr, or Ansible's message), else None."""
    changed = _CHANGED.search(output)
    if changed:
        name = changed.group(1)
        offending = _OFFENDING.search(output)
        where = f"{offending.group(1)} line {offending.group(2)}" if offending else "your known_hosts"
        known_hosts = offending.group(1) if offending else "~/.ssh/known_hosts"
        return (
            f"host key verification failed for {name}: the key it sent is not the one in {where}; "
            f"check its new fingerprint with the cluster's admins, then `ssh-keygen -f {known_hosts} -R {name}`"
        )
    unknown = _UNKNOWN.search(output)
    if unknown:
        name = unknown.group(1)
        return (
            f"host key verification failed for {name}: its key is not in your known_hosts; "
            f"log in once with `ssh {name}` and compare the fingerprint with the one the cluster publishes"
        )
    if "Host key verification failed" in output:
        return f"host key verification failed for {host}: check the key, then fix ~/.ssh/known_hosts"
    if "Permission denied (publickey" in output:
        return "the SSH key was refused (Permission denied (publickey))"
    if _RESOLVE.search(output):
        return f"cannot reach {host}: its address does not resolve (check the ssh config, your network or VPN)"
    if "Connection refused" in output:
        return f"cannot reach {host}: connection refused (wrong port, or no SSH server listening)"
    if "timed out" in output:
        return f"cannot reach {host}: the connection timed out (check your network, VPN or SSH gateway)"
    return None


def reason(output: str, host: str) -> str:
    """explain(), or else ssh's last line: never empty."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return explain(output, host) or (lines[-1] if lines else "ssh failed")
