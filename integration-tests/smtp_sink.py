"""A real SMTP server for the notification tests: aiosmtpd with STARTTLS required and AUTH
(PLAIN and LOGIN) required, a self-signed certificate for `localhost` made with openssl.
Each accepted message is written whole to DIR/<n>.eml; DIR/ready.json says the port and the
certificate once it listens.

usage: smtp_sink.py DIR USER PASSWORD
"""
import asyncio
import json
import os
import ssl
import subprocess
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

directory, user, password = sys.argv[1], sys.argv[2], sys.argv[3]
cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
subprocess.run(
    ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
     "-addext", "subjectAltName=DNS:localhost", "-addext", "basicConstraints=critical,CA:FALSE",
     "-addext", "extendedKeyUsage=serverAuth", "-keyout", key, "-out", cert],
    check=True, capture_output=True)
context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)


class Sink:
    count = 0

    async def handle_DATA(self, server, session, envelope):
        Sink.count += 1
        path = os.path.join(directory, f"{Sink.count:04}.eml")
        with open(path + ".tmp", "wb") as f:  # whole, then renamed: a reader never sees half
            f.write(envelope.original_content or envelope.content)
        os.rename(path + ".tmp", path)
        return "250 OK"


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user \
        and auth_data.password.decode() == password
    return AuthResult(success=ok, handled=False)


import socket
with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    free_port = probe.getsockname()[1]
controller = Controller(Sink(), hostname="127.0.0.1", port=free_port, tls_context=context, require_starttls=True,
                        auth_required=True, auth_require_tls=True, authenticator=authenticate)
controller.start()
with open(os.path.join(directory, "ready.json.tmp"), "w") as f:
    json.dump({"port": controller.port, "cert": cert}, f)
os.rename(os.path.join(directory, "ready.json.tmp"), os.path.join(directory, "ready.json"))
try:
    asyncio.get_event_loop().run_forever()
except KeyboardInterrupt:
    controller.stop()
