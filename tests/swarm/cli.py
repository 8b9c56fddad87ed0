"""``python -m tests.swarm.testbed up|down|status`` (or ``python -m tests.swarm.cli``): a swarm test
bed from a shell, to explore or to debug a test (:mod:`tests.swarm.testbed`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tests.swarm.testbed import Testbed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.swarm.testbed",
                                     description="A real Docker Swarm of N engines on this machine.")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="build a test bed (prints its prefix and how to reach its nodes)")
    up.add_argument("--nodes", type=int, default=3)
    up.add_argument("--image", action="append", default=[], help="an image of the main engine to load into every node")
    up.add_argument("--registry", action="store_true", help="run docker-registry on the manager, trusted by every node")
    up.add_argument("--homes", action="store_true", help="serve a homes directory of this host to every node (sshfs)")
    down = sub.add_parser("down", help="remove test beds")
    down.add_argument("prefix", nargs="*", help="which (their prefixes, as up and status print them)")
    down.add_argument("--all", action="store_true", help="every recorded test bed, another run's too")
    sub.add_parser("status", help="the recorded test beds and their nodes")
    args = parser.parse_args(argv)
    if args.command == "up":
        bed = Testbed(nodes=args.nodes, owner=0, registry=args.registry, homes=args.homes).up()  # kept: down removes it
        print(f"up in {bed.timings['up']:.1f} s")
        for step, seconds in bed.load_images(args.image).items():
            print(f"{step}: {seconds:.1f} s")
        print(bed.status() + (f"\n  registry: {bed.registry}" if args.registry else ""))
        if args.homes:
            print(f"homes: {bed.homes_root} here and on every node")
        print(f"manager: export DOCKER_HOST={bed.manager}\nremove: python -m tests.swarm.testbed down {bed.prefix}")
        return 0
    beds = [Testbed.load(d) for d in Testbed.recorded()]
    if args.command == "status":
        print("\n".join(bed.status() for bed in beds) or "no test bed")
        return 0
    if not args.prefix and not args.all:
        parser.error("down: name the test beds (prefixes) or say --all")
    for bed in beds:
        if args.all or bed.prefix in args.prefix:
            bed.down()
            left = bed.leftovers()
            print(f"{bed.prefix}: down in {bed.timings['down']:.1f} s" + (f"; LEFT: {left}" if left else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
