#!/usr/bin/env bash
# The system tools the tests need, installed when missing (`make test` runs this first):
#   bubblewrap (bwrap) — the sandbox every graded submission runs in (autograder/sandbox.py);
#   chromium           — the built site's browser checks (tests/test_site.py);
#   slurmctld, slurmd, slurm-client, munge — a single-node Slurm cluster that tests/test_slurm.py
#                        starts on localhost (its own config, key and state in a temporary folder) to
#                        run docs/grading.md's Slurm recipe. On a machine with systemd, installing
#                        munge also enables its system service; the test does not use it.
# Uses apt-get (as root, or through passwordless sudo). When it cannot install them it says how,
# and the tests that need them fail naming the same command: they never skip.
set -uo pipefail
need=()
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need+=(chromium)
for tool in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${tool%%:*}" ] || need+=("${tool#*:}")
done
[ ${#need[@]} -eq 0 ] && exit 0
if command -v apt-get >/dev/null 2>&1; then
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then sudo=(sudo -n); fi
  echo "installing ${need[*]} (apt-get) ..." >&2
  if "${sudo[@]}" apt-get update -qq >/dev/null 2>&1 \
     && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null 2>&1; then
    exit 0
  fi
fi
echo "warning: could not install ${need[*]}; the tests that need them will fail." >&2
echo "  Debian/Ubuntu: sudo apt-get install ${need[*]}    Fedora: sudo dnf install ${need[*]}" >&2
exit 0
