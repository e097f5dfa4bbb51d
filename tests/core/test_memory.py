import platform
import subprocess
import sys

# The setting is process-wide, so it is tried in a child process, not in the test runner.
CHILD = r"""
import torch
from datasetgan.core.memory import keep_freed_memory
torch.manual_seed(0)
x = torch.randn(3, 64, 256, 256)           # 48 MiB: above glibc's default mmap threshold
before = torch.nn.functional.conv2d(x, torch.ones(8, 64, 3, 3), padding=1)
took = keep_freed_memory()
for _ in range(3):                           # freed blocks are now reused, not unmapped
    after = torch.nn.functional.conv2d(x.clone(), torch.ones(8, 64, 3, 3), padding=1)
    del after
after = torch.nn.functional.conv2d(x.clone(), torch.ones(8, 64, 3, 3), padding=1)
print(took, torch.equal(before, after))
"""


def test_keep_freed_memory_takes_effect_on_glibc_and_changes_no_result():
    out = subprocess.run([sys.executable, "-c", CHILD], check=True, capture_output=True,
                         text=True).stdout.split()
    on_glibc = platform.libc_ver()[0] == "glibc"
    assert out == [str(on_glibc), "True"]
