# shellcheck shell=bash
# cesres-ctl doctor's checks besides the Python and the modules (roles/cesres_python, entry point check), in
# a login shell (playbooks/doctor.yml), where Lmod's "module", sinfo and $GLOBALSCRATCH are as setup finds them:
#   bash -lc "$(cat doctor.sh)" cesres-doctor MIN_GIB SINFO_FORMAT
# Prints one line per check: CHECK <TAB> id <TAB> pass|fail|warn <TAB> detail, which
# cesres_ctl.provision.doctor reads; sinfo's and scontrol's lines as SINFO, PARTITION and CONFIG <TAB> line,
# which cesres_ctl.provision.facts reads. Always exits 0: the lines carry the result.
ck() { printf 'CHECK\t%s\t%s\t%s\n' "$1" "$2" "$3"; }
min_gib=$1 sinfo_format=$2
if type module >/dev/null 2>&1; then
  ck lmod pass "$(module --version 2>&1 | grep -o 'Version [^ ]*' | head -1)"
fi
# The partitions as Slurm states them, compared in Python (cesres_ctl.provision.facts).
if command -v sinfo >/dev/null 2>&1; then
  sinfo -h -o "$sinfo_format" 2>&1 | awk '{print "SINFO\t" $0}'
  scontrol -o show partition 2>/dev/null | awk '{print "PARTITION\t" $0}'
  scontrol show config 2>/dev/null | awk '/^DefMemPer(CPU|Node) / {print "CONFIG\t" $0}'
else
  ck partitions fail "sinfo not found"
fi
for var in HOME GLOBALSCRATCH; do
  dir=${!var-}
  if [ -z "$dir" ]; then ck "space:\$$var" fail "\$$var is not set in a login shell"; continue; fi
  avail=$(df -Pk "$dir" 2>/dev/null | awk 'NR == 2 {print $4}')
  if [ -z "$avail" ]; then ck "space:\$$var" fail "df $dir failed"; continue; fi
  gib=$(awk -v k="$avail" 'BEGIN {printf "%.1f", k / 1048576}')
  if awk -v g="$gib" -v m="$min_gib" 'BEGIN {exit !(g >= m)}'; then ck "space:\$$var" pass "$gib GiB free in $dir"
  else ck "space:\$$var" fail "$gib GiB free in $dir (less than $min_gib)"; fi
done
if command -v quota >/dev/null 2>&1; then
  q=$(quota -s 2>&1)
  if grep -q '\*' <<<"$q"; then ck quota fail "$(grep '\*' <<<"$q" | head -1 | tr -s ' ')"
  else ck quota pass "$(tail -1 <<<"$q" | tr -s ' ')"; fi
else
  ck quota warn "no quota command on the login node: check the usage with the cluster's own tool"
fi
