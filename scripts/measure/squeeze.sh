#!/bin/bash
# move every process of the root cpu cgroup into 'low' (others' work), every 2 s, while $1 (a pid) lives;
# with a CPU quota on 'low' (0.4 CPU) while it runs
echo 40000 > /sys/fs/cgroup/cpu/low/cpu.cfs_quota_us
while kill -0 "$1" 2>/dev/null; do
  for p in $(cat /sys/fs/cgroup/cpu/cgroup.procs); do echo $p > /sys/fs/cgroup/cpu/low/cgroup.procs 2>/dev/null || true; done
  sleep 2
done
echo -1 > /sys/fs/cgroup/cpu/low/cpu.cfs_quota_us
for p in $(cat /sys/fs/cgroup/cpu/low/cgroup.procs); do echo $p > /sys/fs/cgroup/cpu/cgroup.procs 2>/dev/null || true; done
