# GET http://HOSTPORT/PATH and print the body (bench/exporter.sh; the standard library only).
import sys
import urllib.request

with urllib.request.urlopen(f"http://{sys.argv[1]}{sys.argv[2]}", timeout=60) as r:
    sys.stdout.write(r.read().decode().strip() if sys.argv[2] == "/healthz" else r.read().decode())
