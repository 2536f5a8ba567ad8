"""Issue 23: the kick-off forms reachable from Python (protocol L2, L7):
``ig_version="auto"`` reads the server's CapabilityStatement and picks the
STU4 POST on a server that declares it, and the file-size parameters are
checked before anything is sent."""

from __future__ import annotations

import pytest

import fhir_async
from conftest import FAST, Server


def test_l2_auto_picks_the_stu4_post_from_the_capability_statement(server: Server) -> None:
    client = fhir_async.Client(server.base("/stu4/fhir"), retry=FAST)
    # the stu4 server refuses a GET kick-off with 405: auto must not need that retry
    job = client.export(types=["Patient"], ig_version="auto")
    assert job.status_url is not None
    result = job.wait()
    assert result.status == "completed", result.outcome
    assert [p["resourceType"] for p in result.resources("Patient")][:1] == ["Patient"]


def test_l2_auto_keeps_the_get_form_on_a_bulk_server(server: Server) -> None:
    client = fhir_async.Client(server.base("/bulk/fhir"), retry=FAST)
    result = client.export(types=["Patient"], ig_version="auto").wait()
    assert result.status == "completed", result.outcome


@pytest.mark.parametrize("sizes", [(0, None), (None, 0), (2048, 1024), (1024, 1024)])
def test_l7_file_sizes_must_be_positive_with_max_over_min(server: Server, sizes: tuple) -> None:
    client = fhir_async.Client(server.base("/stu4/fhir"), retry=FAST)
    minimum, maximum = sizes
    with pytest.raises(fhir_async.UsageError):
        client.export(ig_version="stu4", minimum_file_size=minimum, maximum_file_size=maximum)


def test_l7_file_sizes_reach_the_stu4_server(server: Server) -> None:
    client = fhir_async.Client(server.base("/stu4/fhir"), retry=FAST)
    job = client.export(types=["Patient"], ig_version="stu4", minimum_file_size=1024, maximum_file_size=1 << 20)
    assert job.wait().status == "completed"
