"""Stand-in for api.github.com (and the Actions service a runner talks to): see server.py."""

from tests.testbed.fake_github.server import FakeGitHub

__all__ = ["FakeGitHub"]
