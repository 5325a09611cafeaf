#!/usr/bin/env python3
"""Summarizes a V8 .cpuprofile (node --cpu-prof): self time per function (top N) and the share of idle, GC and
program time, so a profile taken on the GPU machine comes back as a few lines.
  usage: python3 bench/cpu-profile-summary.py PROFILE.cpuprofile [N]"""
import json, sys
from collections import defaultdict

prof = json.load(open(sys.argv[1]))
top = int(sys.argv[2]) if len(sys.argv) > 2 else 30
nodes = {n['id']: n for n in prof['nodes']}
self_us = defaultdict(float)
for sample, dt in zip(prof['samples'], prof['timeDeltas']):
    f = nodes[sample]['callFrame']
    url = f.get('url', '').split('/node_modules/')[-1].split('/work/')[-1]
    self_us[(f['functionName'] or '(anonymous)', url, f.get('lineNumber', -1) + 1)] += dt
total = sum(self_us.values())
print(f'total {total / 1e6:.2f} s sampled')
for (name, url, line), us in sorted(self_us.items(), key=lambda kv: -kv[1])[:top]:
    print(f'{us / 1e6:8.3f} s {100 * us / total:5.1f}%  {name}  {url}:{line}')

# A timeline: per second of the profile, the three functions with the most self time (idle excluded).
if len(sys.argv) > 3 and sys.argv[3] == '--timeline':
    buckets = defaultdict(lambda: defaultdict(float))
    t = 0.0
    for sample, dt in zip(prof['samples'], prof['timeDeltas']):
        t += dt
        f = nodes[sample]['callFrame']
        buckets[int(t // 1e6)][f['functionName'] or '(anonymous)'] += dt
    for second in sorted(buckets):
        b = buckets[second]
        idle = b.pop('(idle)', 0.0)
        busy = sorted(b.items(), key=lambda kv: -kv[1])[:3]
        print(f'{second:4d}s idle {idle / 1e4:3.0f}%  ' + '  '.join(f'{n} {us / 1e4:.0f}%' for n, us in busy))
