#!/usr/bin/python3
"""Tiny servers and clients for the helper lab (assets/lab/make-recording.sh).

Owns: the application-level traffic of the lab — small IRC, TFTP, SIP, "MariaDB" and
generic TCP/UDP servers, and the clients that drive each scenario (FTP in both modes,
forged PORT/EPRT, TFTP read, IRC DCC offer, SIP INVITE with SDP, background flows).
Must not: touch namespaces, interfaces or firewall rules (the shell script owns the lab),
or talk to anything outside the lab addresses it is given.

The kernel helpers only parse payloads, so the servers speak just enough of each protocol
for the helper to see a well-formed command on an established connection. Every client
keeps its master connection open for --hold seconds so that masters, expectations and
RELATED flows coexist while the recording runs.

Run with Debian's /usr/bin/python3 (stdlib only). Usage: lab.py COMMAND [options]; see
`lab.py -h`.
"""
import argparse
import ftplib
import ipaddress
import os
import socket
import struct
import sys
import threading
import time


def log(*a):
    print("[lab.py]", *a, file=sys.stderr, flush=True)


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def tcp_connect(host, port, timeout=10):
    s = socket.socket(family(host), socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(timeout)
    s.connect((host, port))
    return s


def send_line(s, line, pause=0.15):
    """One command per segment: the helpers look at the start of each payload."""
    s.sendall(line.encode() + b"\r\n")
    time.sleep(pause)


# --------------------------------------------------------------------------- servers


def serve_tcp(args):
    """Accept connections on every --listen addr; send --banner; echo what comes in.

    Stands in for sshd, MariaDB (a real MariaDB greeting packet), web servers and the
    like: conntrack only sees the TCP handshake and the bytes.
    """
    banner = args.banner.encode().decode("unicode_escape").encode("latin-1")
    if args.mariadb:
        payload = b"\x0a5.5.5-10.11.6-MariaDB-0+deb12u1\x00" + struct.pack("<I", 42)
        payload += b"lab12345\x00" + b"\xfe\xf7\x08\x02\x00\xff\x81\x15" + b"\x00" * 10
        payload += b"lab1234567890\x00mysql_native_password\x00"
        banner = struct.pack("<I", len(payload))[:3] + b"\x00" + payload

    def handle(c):
        try:
            if banner:
                c.sendall(banner)
            while True:
                d = c.recv(4096)
                if not d:
                    break
                if args.http and b"\r\n\r\n" in d:
                    body = b"<html>ctscope lab</html>\n"
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                              b"Content-Type: text/html\r\n\r\n" % len(body) + body)
                elif args.echo:
                    c.sendall(d)
        except OSError:
            pass
        finally:
            c.close()

    def acceptor(ls):
        while True:
            c, _ = ls.accept()
            threading.Thread(target=handle, args=(c,), daemon=True).start()

    for addr in args.listen:
        ls = socket.socket(family(addr), socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family(addr) == socket.AF_INET6:
            ls.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        ls.bind((addr, args.port))
        ls.listen(16)
        threading.Thread(target=acceptor, args=(ls,), daemon=True).start()
    while True:
        time.sleep(3600)


def serve_udp(args):
    """Answer every datagram (DNS/NTP-like background flows)."""
    socks = []
    for addr in args.listen:
        s = socket.socket(family(addr), socket.SOCK_DGRAM)
        if family(addr) == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((addr, args.port))
        socks.append(s)

    def loop(s):
        while True:
            d, peer = s.recvfrom(2048)
            s.sendto(d[:2] + b"\x81\x80" + d[4:], peer)

    for s in socks:
        threading.Thread(target=loop, args=(s,), daemon=True).start()
    while True:
        time.sleep(3600)


def serve_tftp(args):
    """RFC 1350 read-only server: answers RRQ from a fresh port (the RELATED flow).

    A file named in --ignore is never answered, so its expectation stays pending.
    """
    socks = []
    for addr in args.listen:
        s = socket.socket(family(addr), socket.SOCK_DGRAM)
        s.bind((addr, 69))
        socks.append((addr, s))

    def transfer(local, peer, name):
        path = os.path.join(args.dir, os.path.basename(name))
        t = socket.socket(family(local), socket.SOCK_DGRAM)
        t.bind((local, 0))
        t.settimeout(3)
        try:
            data = open(path, "rb").read()
        except OSError:
            t.sendto(b"\x00\x05\x00\x01not found\x00", peer)
            return
        block = 1
        while True:
            chunk = data[(block - 1) * 512:block * 512]
            for _ in range(5):
                t.sendto(struct.pack("!HH", 3, block) + chunk, peer)
                try:
                    ack, _ = t.recvfrom(516)
                    if ack[:2] == b"\x00\x04" and struct.unpack("!H", ack[2:4])[0] == block:
                        break
                except socket.timeout:
                    continue
            if len(chunk) < 512:
                break
            block += 1
        t.close()

    def loop(local, s):
        while True:
            d, peer = s.recvfrom(1024)
            if d[:2] != b"\x00\x01":
                continue
            name = d[2:].split(b"\x00")[0].decode(errors="replace")
            if name in args.ignore:
                log("tftp: ignoring RRQ", name, "from", peer)
                continue
            threading.Thread(target=transfer, args=(local, peer, name), daemon=True).start()

    for local, s in socks:
        threading.Thread(target=loop, args=(local, s), daemon=True).start()
    while True:
        time.sleep(3600)


def serve_irc(args):
    """Just enough IRC: welcome the client, swallow everything else."""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((args.listen, 6667))
    ls.listen(8)

    def handle(c):
        try:
            c.sendall(b":irc.lab NOTICE * :*** Looking up your hostname\r\n")
            while True:
                d = c.recv(4096)
                if not d:
                    break
                if d.startswith(b"NICK"):
                    nick = d.split()[1]
                    c.sendall(b":irc.lab 001 " + nick + b" :Welcome to the ctscope lab\r\n")
        except OSError:
            pass
        finally:
            c.close()

    while True:
        c, _ = ls.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


def sip_sdp(addr, port, sess):
    ipv = "IP6" if ":" in addr else "IP4"
    return (
        "v=0\r\n"
        f"o=- {sess} {sess} IN {ipv} {addr}\r\n"
        "s=ctscope lab call\r\n"
        f"c=IN {ipv} {addr}\r\n"
        "t=0 0\r\n"
        f"m=audio {port} RTP/AVP 0 8 101\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:8 PCMA/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
        "a=sendrecv\r\n"
    )


def serve_sip(args):
    """A SIP UA that answers INVITE with 100 and 200 + SDP (its own RTP port)."""
    socks = []
    for addr in args.listen:
        s = socket.socket(family(addr), socket.SOCK_DGRAM)
        s.bind((addr, 5060))
        socks.append((addr, s))

    def loop(local, s):
        while True:
            d, peer = s.recvfrom(4096)
            msg = d.decode(errors="replace")
            head = msg.split("\r\n\r\n", 1)[0].split("\r\n")
            method = head[0].split(" ")[0]
            hdrs = [h for h in head[1:] if h.split(":")[0].lower()
                    in ("via", "from", "to", "call-id", "cseq")]
            if method == "INVITE":
                base = "\r\n".join(hdrs)
                s.sendto(f"SIP/2.0 100 Trying\r\n{base}\r\nContent-Length: 0\r\n\r\n".encode(), peer)
                time.sleep(0.2)
                hdrs2 = [h + ";tag=srv1" if h.lower().startswith("to:") else h for h in hdrs]
                sdp = sip_sdp(local, args.rtp_port, 2002)
                ipfmt = f"[{local}]" if ":" in local else local
                resp = (
                    "SIP/2.0 200 OK\r\n" + "\r\n".join(hdrs2) + "\r\n"
                    f"Contact: <sip:bob@{ipfmt}:5060>\r\n"
                    "Content-Type: application/sdp\r\n"
                    f"Content-Length: {len(sdp)}\r\n\r\n" + sdp
                )
                s.sendto(resp.encode(), peer)
            elif method == "REGISTER":
                # Echo the binding with its lifetime: the helper keeps the signalling
                # expectation only when the 200 OK lists the Contact with expires > 0.
                contact = next((h for h in head[1:] if h.lower().startswith("contact:")), "")
                base = "\r\n".join(hdrs)
                s.sendto((f"SIP/2.0 200 OK\r\n{base}\r\n{contact};expires=3600\r\n"
                          "Expires: 3600\r\nContent-Length: 0\r\n\r\n").encode(), peer)
            elif method in ("BYE", "OPTIONS"):
                base = "\r\n".join(hdrs)
                s.sendto(f"SIP/2.0 200 OK\r\n{base}\r\nContent-Length: 0\r\n\r\n".encode(), peer)

    for local, s in socks:
        threading.Thread(target=loop, args=(local, s), daemon=True).start()
    while True:
        time.sleep(3600)


def serve_silent_ftp(args):
    """An 'FTP server' that greets, says yes to everything and never opens a data link.

    The attacker's end of the forged EPRT: the expectation it provokes stays pending.
    """
    ls = socket.socket(family(args.listen), socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family(args.listen) == socket.AF_INET6:
        ls.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    ls.bind((args.listen, 21))
    ls.listen(8)

    def handle(c):
        try:
            c.sendall(b"220 welcome\r\n")
            while True:
                d = c.recv(4096)
                if not d:
                    break
                c.sendall(b"331 ok\r\n" if d.startswith(b"USER") else b"200 ok\r\n")
        except OSError:
            pass
        finally:
            c.close()

    while True:
        c, _ = ls.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


# --------------------------------------------------------------------------- clients


def ftp_session(args):
    """Real ftplib transfers (passive/active, v4/v6); optionally a pending PASV at the end."""
    f = ftplib.FTP()
    f.connect(args.host, args.port, timeout=10)
    f.login()
    f.set_pasv(args.mode == "passive")
    for name in args.get:
        buf = bytearray()
        f.retrbinary("RETR " + name, buf.extend)
        log(f"ftp {args.mode} {args.host}: RETR {name}: {len(buf)} bytes")
        time.sleep(args.gap)
    if args.list:
        f.retrlines("LIST", lambda _l: None)
    if args.slow:
        # A data connection that stays ESTABLISHED: read a large file a trickle at a time.
        conn = f.transfercmd("RETR " + args.slow)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        end = time.time() + args.hold
        got = 0
        while time.time() < end:
            d = conn.recv(2048)
            if not d:
                break
            got += len(d)
            time.sleep(0.25)
        log(f"ftp slow RETR {args.slow}: {got} bytes so far")
        conn.close()
        return
    if args.pending_pasv:
        # Ask for a passive port and never connect: the expectation stays in the table.
        resp = f.sendcmd("EPSV" if ":" in args.host else "PASV")
        log("ftp pending:", resp)
    time.sleep(args.hold)
    try:
        f.quit()
    except (OSError, ftplib.Error):
        pass


def forge_port(args):
    """The seed story: a host behind a 'RELATED,ESTABLISHED -j ACCEPT' firewall is made to
    send PORT/EPRT naming its own database port to an outside FTP server. The FTP helper
    (CT target on OUTPUT) turns that into an expectation toward host:3306, and the
    outside server's connection to 3306 becomes RELATED.
    """
    s = tcp_connect(args.server, 21)
    s.recv(256)
    send_line(s, "USER anonymous")
    s.recv(256)
    send_line(s, "PASS lab@")
    s.recv(256)
    ip = ipaddress.ip_address(args.target)
    if ip.version == 4:
        p = ",".join(str(ip).split(".")) + f",{args.port >> 8},{args.port & 255}"
        send_line(s, f"PORT {p}")
    else:
        send_line(s, f"EPRT |2|{ip}|{args.port}|")
    try:
        log("forge:", s.recv(256).decode(errors="replace").strip())
    except socket.timeout:
        pass
    time.sleep(args.hold)
    s.close()


def tftp_get(args):
    """RRQ from a fixed local port; read the file if the server answers."""
    s = socket.socket(family(args.host), socket.SOCK_DGRAM)
    s.bind((args.bind, args.sport))
    s.settimeout(2)
    s.sendto(b"\x00\x01" + args.file.encode() + b"\x00octet\x00", (args.host, 69))
    size = 0
    while True:
        try:
            d, peer = s.recvfrom(516)
        except socket.timeout:
            log("tftp: no answer for", args.file)
            break
        if d[:2] != b"\x00\x03":
            break
        size += len(d) - 4
        s.sendto(b"\x00\x04" + d[2:4], peer)
        if len(d) < 516:
            log(f"tftp {args.host}: {args.file}: {size} bytes from {peer}")
            break
    time.sleep(args.hold)


def irc_dcc(args):
    """Log on to IRC and offer files by DCC SEND; listen on the offered ports."""
    listeners = []
    for port in args.dcc_port:
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((args.me, port))
        ls.listen(2)
        listeners.append(ls)

    def serve_file(ls):
        c, peer = ls.accept()
        c.sendall(os.urandom(4096))
        log("dcc: sent file to", peer)
        time.sleep(args.hold)
        c.close()

    for ls in listeners:
        threading.Thread(target=serve_file, args=(ls,), daemon=True).start()
    s = tcp_connect(args.server, 6667)
    send_line(s, "NICK alice")
    send_line(s, "USER alice 0 * :Alice")
    s.recv(1024)
    ip = int(ipaddress.IPv4Address(args.me))
    for i, port in enumerate(args.dcc_port):
        send_line(s, f"PRIVMSG bob :\x01DCC SEND report-{i + 1}.pdf {ip} {port} 4096\x01", 0.5)
    time.sleep(args.hold)
    s.close()


def connect_hold(args):
    """Open a TCP connection, read the banner, send a little, keep it open.

    --every sends a line now and then (counters move, the flow stays ESTABLISHED);
    --reset ends with an RST instead of a FIN (the flow goes to CLOSE and is destroyed
    within seconds, so the recording holds DESTROY events).
    """
    s = socket.socket(family(args.host), socket.SOCK_STREAM)
    if args.bind:
        s.bind((args.bind, 0))
    s.settimeout(3)
    s.connect((args.host, args.port))
    s.settimeout(1)
    try:
        s.recv(1024)
    except socket.timeout:
        pass
    if args.send:
        s.sendall(args.send.encode().decode("unicode_escape").encode("latin-1"))
        try:
            s.recv(4096)
        except socket.timeout:
            pass
    end = time.time() + args.hold
    while time.time() < end:
        time.sleep(max(min(args.every or args.hold, end - time.time()), 0))
        if args.every:
            try:
                s.sendall(b"keepalive\n")
                s.recv(64)
            except socket.timeout:
                pass
            except OSError:
                break
    if args.reset:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def sip_call(args):
    """INVITE with SDP, read 100/200, ACK, then send RTP both ways for --rtp seconds."""
    fam = family(args.host)
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((args.me, 5060))
    s.settimeout(3)
    me = f"[{args.me}]" if fam == socket.AF_INET6 else args.me
    host = f"[{args.host}]" if fam == socket.AF_INET6 else args.host
    sdp = sip_sdp(args.me, args.rtp_port, 1001)
    call_id = f"lab-{args.rtp_port}@ctscope"
    common = (
        f"Via: SIP/2.0/UDP {me}:5060;branch=z9hG4bK{args.rtp_port}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:alice@{me}>;tag=cli1\r\n"
        f"To: <sip:bob@{host}>\r\n"
        f"Call-ID: {call_id}\r\n"
    )
    invite = (
        f"INVITE sip:bob@{host} SIP/2.0\r\n" + common + "CSeq: 1 INVITE\r\n"
        f"Contact: <sip:alice@{me}:5060>\r\n"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(sdp)}\r\n\r\n" + sdp
    )
    s.sendto(invite.encode(), (args.host, 5060))
    remote_rtp = None
    for _ in range(2):
        d, _ = s.recvfrom(4096)
        text = d.decode(errors="replace")
        log("sip:", text.split("\r\n")[0])
        for line in text.split("\r\n"):
            if line.startswith("m=audio"):
                remote_rtp = int(line.split()[1])
    ack = (f"ACK sip:bob@{host} SIP/2.0\r\n" + common.replace("To: <sip:bob@" + host + ">",
           "To: <sip:bob@" + host + ">;tag=srv1") + "CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n")
    s.sendto(ack.encode(), (args.host, 5060))
    if remote_rtp and args.rtp:
        r = socket.socket(fam, socket.SOCK_DGRAM)
        r.bind((args.me, args.rtp_port))
        r.settimeout(0.05)
        seq = 0
        end = time.time() + args.rtp
        while time.time() < end:
            hdr = struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 0x1ab)
            r.sendto(hdr + b"\xff" * 160, (args.host, remote_rtp))
            seq += 1
            try:
                r.recvfrom(2048)
            except socket.timeout:
                pass
            time.sleep(0.02)
    time.sleep(args.hold)


def sip_register(args):
    """REGISTER a Contact: the helper expects incoming signalling toward it (class 0,
    flags PERMANENT and INACTIVE until the registrar's 200 OK)."""
    fam = family(args.host)
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((args.me, args.sport))
    s.settimeout(3)
    me = f"[{args.me}]" if fam == socket.AF_INET6 else args.me
    host = f"[{args.host}]" if fam == socket.AF_INET6 else args.host
    msg = (
        f"REGISTER sip:{host} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {me}:{args.sport};branch=z9hG4bKreg{args.sport}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:carol@{host}>;tag=reg1\r\n"
        f"To: <sip:carol@{host}>\r\n"
        f"Call-ID: reg-{args.sport}@ctscope\r\n"
        "CSeq: 1 REGISTER\r\n"
        f"Contact: <sip:carol@{me}:{args.sport}>\r\n"
        "Expires: 3600\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    s.sendto(msg.encode(), (args.host, 5060))
    try:
        d, _ = s.recvfrom(4096)
        log("sip register:", d.decode(errors="replace").split("\r\n")[0])
    except socket.timeout:
        log("sip register: no answer")
    time.sleep(args.hold)


def rtp_echo(args):
    """The callee's media: answer RTP on --port back to wherever it came from."""
    s = socket.socket(family(args.listen), socket.SOCK_DGRAM)
    s.bind((args.listen, args.port))
    while True:
        d, peer = s.recvfrom(2048)
        s.sendto(d, peer)


def udp_ping(args):
    """A few request/response datagrams from a fixed source port."""
    s = socket.socket(family(args.host), socket.SOCK_DGRAM)
    if args.sport:
        s.bind(("", args.sport))
    s.settimeout(1)
    for i in range(args.count):
        s.sendto(struct.pack("!H", 0x1000 + i) + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                 b"\x03lab\x07ctscope\x00\x00\x01\x00\x01", (args.host, args.port))
        try:
            s.recvfrom(2048)
        except socket.timeout:
            pass
        time.sleep(args.every)


def checksum(b):
    if len(b) % 2:
        b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    t = (t >> 16) + (t & 0xFFFF)
    t += t >> 16
    return ~t & 0xFFFF


def icmp_ping(args):
    """Echo requests over a raw socket (no ping(8) needed), one every --every seconds."""
    v6 = ":" in args.host
    if v6:
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        kind = 128  # ICMPv6 echo request; the kernel fills in the checksum
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        kind = 8
    s.settimeout(0.5)
    ident = args.ident or (os.getpid() & 0xFFFF)
    for seq in range(1, args.count + 1):
        body = b"ctscope-lab-ping" * 3
        hdr = struct.pack("!BBHHH", kind, 0, 0, ident, seq)
        if not v6:
            hdr = struct.pack("!BBHHH", kind, 0, checksum(hdr + body), ident, seq)
        s.sendto(hdr + body, (args.host, 0))
        try:
            s.recvfrom(2048)
        except socket.timeout:
            pass
        if seq < args.count:
            time.sleep(args.every)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    a = sub.add_parser("serve-tcp")
    a.add_argument("--listen", action="append", required=True)
    a.add_argument("--port", type=int, required=True)
    a.add_argument("--banner", default="")
    a.add_argument("--mariadb", action="store_true")
    a.add_argument("--http", action="store_true")
    a.add_argument("--echo", action="store_true")
    a.set_defaults(fn=serve_tcp)

    a = sub.add_parser("serve-udp")
    a.add_argument("--listen", action="append", required=True)
    a.add_argument("--port", type=int, required=True)
    a.set_defaults(fn=serve_udp)

    a = sub.add_parser("serve-tftp")
    a.add_argument("--listen", action="append", required=True)
    a.add_argument("--dir", required=True)
    a.add_argument("--ignore", action="append", default=[])
    a.set_defaults(fn=serve_tftp)

    a = sub.add_parser("serve-irc")
    a.add_argument("--listen", required=True)
    a.set_defaults(fn=serve_irc)

    a = sub.add_parser("serve-sip")
    a.add_argument("--listen", action="append", required=True)
    a.add_argument("--rtp-port", type=int, default=40000)
    a.set_defaults(fn=serve_sip)

    a = sub.add_parser("serve-silent-ftp")
    a.add_argument("--listen", required=True)
    a.set_defaults(fn=serve_silent_ftp)

    a = sub.add_parser("rtp-echo")
    a.add_argument("--listen", required=True)
    a.add_argument("--port", type=int, required=True)
    a.set_defaults(fn=rtp_echo)

    a = sub.add_parser("ftp")
    a.add_argument("--host", required=True)
    a.add_argument("--port", type=int, default=21)
    a.add_argument("--mode", choices=["passive", "active"], default="passive")
    a.add_argument("--get", action="append", default=[])
    a.add_argument("--list", action="store_true")
    a.add_argument("--pending-pasv", action="store_true")
    a.add_argument("--slow", default="", help="RETR this file a trickle at a time")
    a.add_argument("--gap", type=float, default=0.3)
    a.add_argument("--hold", type=float, default=60)
    a.set_defaults(fn=ftp_session)

    a = sub.add_parser("forge-port")
    a.add_argument("--server", required=True)
    a.add_argument("--target", required=True)
    a.add_argument("--port", type=int, default=3306)
    a.add_argument("--hold", type=float, default=60)
    a.set_defaults(fn=forge_port)

    a = sub.add_parser("tftp-get")
    a.add_argument("--host", required=True)
    a.add_argument("--bind", default="")
    a.add_argument("--sport", type=int, default=0)
    a.add_argument("--file", required=True)
    a.add_argument("--hold", type=float, default=0)
    a.set_defaults(fn=tftp_get)

    a = sub.add_parser("irc-dcc")
    a.add_argument("--server", required=True)
    a.add_argument("--me", required=True)
    a.add_argument("--dcc-port", type=int, action="append", required=True)
    a.add_argument("--hold", type=float, default=60)
    a.set_defaults(fn=irc_dcc)

    a = sub.add_parser("connect")
    a.add_argument("--host", required=True)
    a.add_argument("--port", type=int, required=True)
    a.add_argument("--send", default="")
    a.add_argument("--bind", default="")
    a.add_argument("--every", type=float, default=0)
    a.add_argument("--reset", action="store_true")
    a.add_argument("--hold", type=float, default=60)
    a.set_defaults(fn=connect_hold)

    a = sub.add_parser("sip-call")
    a.add_argument("--host", required=True)
    a.add_argument("--me", required=True)
    a.add_argument("--rtp-port", type=int, default=49170)
    a.add_argument("--rtp", type=float, default=3)
    a.add_argument("--hold", type=float, default=60)
    a.set_defaults(fn=sip_call)

    a = sub.add_parser("sip-register")
    a.add_argument("--host", required=True)
    a.add_argument("--me", required=True)
    a.add_argument("--sport", type=int, default=5062)
    a.add_argument("--hold", type=float, default=60)
    a.set_defaults(fn=sip_register)

    a = sub.add_parser("udp")
    a.add_argument("--host", required=True)
    a.add_argument("--port", type=int, required=True)
    a.add_argument("--sport", type=int, default=0)
    a.add_argument("--count", type=int, default=3)
    a.add_argument("--every", type=float, default=0.5)
    a.set_defaults(fn=udp_ping)

    a = sub.add_parser("ping")
    a.add_argument("--host", required=True)
    a.add_argument("--count", type=int, default=3)
    a.add_argument("--every", type=float, default=1)
    a.add_argument("--ident", type=int, default=0)
    a.set_defaults(fn=icmp_ping)

    args = p.parse_args()
    try:
        args.fn(args)
    except KeyboardInterrupt:
        pass
    except (OSError, ftplib.Error) as e:
        log(f"{args.cmd}: {e}")
        sys.exit(1)


if __name__ == "__main__":
    main()
