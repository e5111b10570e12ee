"""glog's line layout for the mock master's log."""

from __future__ import annotations

import logging
import os
import time


class GlogFormatter(logging.Formatter):
    """`I1124 00:47:02.700508  5609 master_service.cpp:4428] ...`: glog's layout, so log greps written
    for the real master (e.g. `info=object_already_exists`) work on the mock's log too."""

    def format(self, record: logging.LogRecord) -> str:
        lvl = {"DEBUG": "I", "INFO": "I", "WARNING": "W", "ERROR": "E", "CRITICAL": "F"}[record.levelname]
        t = time.localtime(record.created)
        usec = int((record.created % 1) * 1e6)
        stamp = time.strftime("%m%d %H:%M:%S", t)
        return f"{lvl}{stamp}.{usec:06d} {os.getpid():6d} mock_master.py:0] {record.getMessage()}"
