#!/usr/bin/env python3
"""A second DDI client's view: drives a gateway with the rauc-hawkbit library (PyPI
rauc-hawkbit 0.2.0, the Python client rauc-hawkbit-updater was ported from), step by step as its
RaucDBUSDDIClient does: poll, configData, the deploymentBase href parsed with its own regular
expression (it needs hawkBit's `?c=`), the artifact downloaded with its get_binary (checking
sha1, md5, sha256 and size), proceeding and closed feedback, poll again.

Usage: rauc_hawkbit_client.py HOST:PORT TARGET_TOKEN CONTROLLER_ID DOWNLOAD_PATH
Prints one JSON line per step; exits 1 on any failure.
"""
import asyncio, hashlib, json, re, sys

import aiohttp
from rauc_hawkbit.ddi.client import ConfigStatusExecution, ConfigStatusResult, DDIClient
from rauc_hawkbit.ddi.deployment_base import DeploymentStatusExecution, DeploymentStatusResult


def say(step, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


async def main(host, token, controller, location):
    async with aiohttp.ClientSession() as session:
        ddi = DDIClient(session, host, False, token, "DEFAULT", controller)
        base = await ddi()
        say("poll", sleep=base["config"]["polling"]["sleep"], links=sorted(base.get("_links", {})))
        if "configData" in base.get("_links", {}):
            await ddi.configData(ConfigStatusExecution.closed, ConfigStatusResult.success, hardware="hvac", serialnumber="8922673153")
            say("configData")
        base = await ddi()
        href = base["_links"]["deploymentBase"]["href"]
        action_id, resource = re.search(r"/deploymentBase/(.+)\?c=(.+)$", href).groups()
        info = await ddi.deploymentBase[action_id](resource)
        artifact = info["deployment"]["chunks"][0]["artifacts"][0]
        await ddi.deploymentBase[action_id].feedback(DeploymentStatusExecution.proceeding, DeploymentStatusResult.none, ["Starting bundle download"])
        url = artifact["_links"]["download"]["href"] if "download" in artifact["_links"] else artifact["_links"]["download-http"]["href"]
        md5 = await ddi.get_binary(url, location)
        data = open(location, "rb").read()
        hashes = artifact["hashes"]
        ok = (md5 == hashes["md5"] and hashlib.sha1(data).hexdigest() == hashes["sha1"]
              and hashlib.sha256(data).hexdigest() == hashes["sha256"] and len(data) == artifact["size"])
        say("downloaded", ok=ok, size=len(data), filename=artifact["filename"], action=action_id,
            update=info["deployment"]["update"], version=info["deployment"]["chunks"][0]["version"])
        await ddi.deploymentBase[action_id].feedback(
            DeploymentStatusExecution.closed, DeploymentStatusResult.success if ok else DeploymentStatusResult.failure,
            ["Software bundle installed successfully." if ok else "checksums differ"])
        say("closed")
        base = await ddi()
        say("poll", sleep=base["config"]["polling"]["sleep"], links=sorted(base.get("_links", {})))
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(*sys.argv[1:5])))
