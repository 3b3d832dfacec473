"""The tenant service's PHP sizing: prefork workers x PHP's memory limit fit the instance,
and the upload limit never passes what Cloud Run accepts in one request."""

from __future__ import annotations

import pytest

from controlplane.providers.gcp.runtime import check_php_fits, mebibytes, upload_limit


def test_sizes_read_as_mebibytes() -> None:
    assert (mebibytes("512Mi"), mebibytes("1Gi"), mebibytes("96M"), mebibytes("2G")) == (
        512, 1024, 96, 2048)  # fmt: skip
    with pytest.raises(ValueError, match="not a size"):
        mebibytes("lots")


def test_workers_that_could_exhaust_memory_are_refused_saying_what_to_change() -> None:
    check_php_fits("512Mi", 4, "96M")  # 4 x 96 + 128 = 512: fits exactly
    with pytest.raises(ValueError, match=r"needs 608 MiB, more than AIPRESS_SITE_MEMORY=512Mi"):
        check_php_fits("512Mi", 5, "96M")
    # Cloud Run's old default of 80 requests per instance with prefork PHP in 512 MiB.
    with pytest.raises(ValueError, match="lower the concurrency"):
        check_php_fits("512Mi", 80, "96M")


def test_the_upload_limit_is_the_setting_capped_at_cloud_runs_request_size() -> None:
    assert upload_limit("16M") == "16M"
    assert upload_limit("64M") == "32M"
