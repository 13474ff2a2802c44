"""Tasks for examples/hello.flow: littleflow run examples/hello.flow --tasks examples/hello_tasks.py"""

import time


def fetch(input, url):
    time.sleep(0.2)  # pretend to download
    return {"url": url, "text": "  Hello, Workflow World!  "}


def clean(input):
    return {"text": " ".join(input["text"].split()).lower()}


def store(input):
    time.sleep(0.1)
    return {"stored": len(input["text"])}


def index(input):
    return {"words": len(input["text"].split())}


def audit(input):
    return {"audited": True}


def notify(input):
    return {"notified": True, "received": input}
