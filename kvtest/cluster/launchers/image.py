"""The image a `reach: docker` host runs: a Debian root file system built from Debian's packages.

    python -m kvtest.cluster.launchers.image        # build (or find) it; prints the tag and the time

There is no image registry to pull from, so the image is built here: mmdebstrap makes a minimal
bookworm root file system with the system pieces (etcd, the libraries mooncake_master and the store
client link, iproute2, sshd for the ssh tier) and `docker import` turns the tarball into an image.
Python and the project are NOT copied in: the container bind-mounts the checkout and the
interpreter (/root/.pyenv or wherever sys.base_prefix is) read-only at the same paths, so .venv and
.venv-real (whose scripts name that interpreter by absolute path) work unchanged inside, and the
image never goes stale when the code changes. The tag is a hash of the inputs (suite, packages,
this recipe), so the image is rebuilt only when they change.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time

SUITE = "bookworm"
PACKAGES = (
    # etcd and the libraries mooncake_master / store.so link even for TCP (ldd of the non-CUDA wheel)
    "etcd-server", "libibverbs1", "libnl-3-200", "libnl-route-3-200", "libnuma1", "libcurl4",
    # the bind-mounted interpreter's extension modules (ldd of lib-dynload), vLLM's OpenMP runtime
    "libssl3", "libffi8", "libsqlite3-0", "libbz2-1.0", "liblzma5", "libreadline8", "libncursesw6",
    "libuuid1", "libstdc++6", "libgomp1", "zlib1g",
    # process control inside the machine, and sshd for the ssh launcher's host
    "iproute2", "procps", "openssh-server", "openssh-client", "util-linux",
)  # fmt: skip
REPOSITORY = "kvtest-host"
RECIPE_VERSION = "1"  # bump when the build steps below change


def tag() -> str:
    digest = hashlib.sha256("\n".join([RECIPE_VERSION, SUITE, *sorted(PACKAGES)]).encode()).hexdigest()
    return f"{REPOSITORY}:{digest[:12]}"


def image_exists(name: str) -> bool:
    done = subprocess.run(["docker", "image", "inspect", name], capture_output=True, check=False)
    return done.returncode == 0


def ensure_image(log: object = print) -> tuple[str, float, bool]:
    """The image's tag, the seconds spent, and whether it was built now (False: cached)."""
    name = tag()
    t0 = time.monotonic()
    if image_exists(name):
        return name, time.monotonic() - t0, False
    if shutil.which("mmdebstrap") is None:
        raise FileNotFoundError("mmdebstrap not found (apt-get install mmdebstrap; ci/install-docker.sh)")
    log(f"image: building {name} (mmdebstrap {SUITE}, {len(PACKAGES)} packages; a few minutes once)")  # type: ignore[operator]
    build = subprocess.Popen(
        ["mmdebstrap", "--variant=minbase", "--quiet", f"--include={','.join(PACKAGES)}",
         # no docs or caches: a smaller tarball to import
         "--dpkgopt=path-exclude=/usr/share/{doc,man,locale}/*", "--aptopt=APT::Install-Recommends false",
         SUITE, "-"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    imported = subprocess.run(
        ["docker", "import", "--change", 'CMD ["sleep", "infinity"]', "-", name],
        stdin=build.stdout,
        capture_output=True,
        check=False,
    )
    assert build.stdout is not None
    build.stdout.close()
    if build.wait() != 0 or imported.returncode != 0:
        raise RuntimeError(f"image build failed: {imported.stderr.decode(errors='replace')}")
    return name, time.monotonic() - t0, True


def main() -> int:
    name, seconds, built = ensure_image(lambda m: print(m, file=sys.stderr, flush=True))
    print(f"image {name}: {'built' if built else 'cached'} in {seconds:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
