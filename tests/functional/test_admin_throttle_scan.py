"""The attacks page's read of the throttle marks (authsvc.admin.throttles.scan): counters, sets and HyperLogLogs come
back with their values and time left, in batches (HyperLogLogs pipelined too, except on a Redis Cluster, whose
pipelines refuse PFCOUNT — the CI runs this file on a real Cluster), capped at ``limit``."""

from authsvc.admin import throttles as th


def test_scan_reads_counters_sets_and_hyperloglogs_in_batches(app, redis_client):
    r = redis_client
    for i in range(450):  # more than one batch of each kind
        r.set(f"th:{{ip:198.51.100.{i % 250}-{i}}}:f", i, ex=600)
        r.pfadd(f"th:{{pw:{i:04x}}}:u", *[f"acct{j}" for j in range(i % 7 + 1)])
        r.expire(f"th:{{pw:{i:04x}}}:u", 900)
    r.sadd("th:{a:feedface}:known", "pfx1", "pfx2")
    r.expire("th:{a:feedface}:known", 300)
    r.set("unrelated:key", 1)
    marks = {m.key: m for m in th.scan(r, limit=5000)}
    assert marks["th:{ip:198.51.100.7-7}:f"].value == 7 and 0 < marks["th:{ip:198.51.100.7-7}:f"].ttl <= 600
    assert marks["th:{pw:0005}:u"].value == 6 and 600 < marks["th:{pw:0005}:u"].ttl <= 900  # PFCOUNT, not a GET
    assert marks["th:{a:feedface}:known"].value == 2
    assert "unrelated:key" not in marks and len(marks) == 901
    assert len(th.scan(r, limit=100)) <= 100 + 200  # capped (a batch may complete)
