#!/bin/sh
# bootstrap of a custom runtime (provided.al2023) with the funcie layer: the function's own
# bootstrap is renamed real-bootstrap in the zip, and funcie's wrapper runs it. While
# `funcie connect` serves the app, invocations go to your machine; otherwise to it.
exec /opt/funcie-wrapper /var/task/real-bootstrap
