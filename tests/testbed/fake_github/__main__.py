"""Run the fake GitHub on its own for demos: ``python -m tests.testbed.fake_github --port N``."""

from __future__ import annotations

import argparse
import signal
import threading

from tests.testbed.fake_github.server import FakeGitHub


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--owner", default="acme")
    parser.add_argument("--repo", default="kernel-ci")
    args = parser.parse_args()
    fake = FakeGitHub(args.owner, args.repo, port=args.port).start()
    print(f"fake GitHub API: {fake.url}  (guest: {fake.guest_url})", flush=True)
    print(f"admin token:     {fake.admin_token}", flush=True)
    print(f"config.sh --url  {fake.runner_url()}", flush=True)
    print(f"registration token: {fake.create_registration_token()}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
