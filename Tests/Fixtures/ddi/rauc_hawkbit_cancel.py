#!/usr/bin/env python3
"""A DDI client through a cancelation, with the rauc-hawkbit library's calls (PyPI rauc-hawkbit
0.2.0): polls once a second (bounded by DEADLINE seconds), and prints one JSON line per event:
  offered   a deploymentBase link (the action id), not acted on;
  cancel    a cancelAction link: GETs it and answers with MODE — "accept" (closed/success with
            the stopId, as SWUpdate does) or "reject" (rejected, as rauc-hawkbit-updater does);
  idle      a poll without links after the cancelation;
  installed a deploymentBase link after the cancelation (another action once accepted and the
            rollout resumed; the same action once rejected): downloads the artifact, checks its
            sha256 and closes with success; then exits 0.

Usage: rauc_hawkbit_cancel.py HOST:PORT TARGET_TOKEN CONTROLLER_ID DOWNLOAD_PATH MODE DEADLINE
"""
import asyncio, hashlib, json, re, sys, time

import aiohttp
from rauc_hawkbit.ddi.cancel_action import CancelStatusExecution, CancelStatusResult
from rauc_hawkbit.ddi.client import DDIClient
from rauc_hawkbit.ddi.deployment_base import DeploymentStatusExecution, DeploymentStatusResult


def say(event, **fields):
    print(json.dumps({"event": event, **fields}), flush=True)


async def main(host, token, controller, location, mode, deadline):
    end = time.time() + float(deadline)
    offered = None
    canceled = False
    async with aiohttp.ClientSession() as session:
        ddi = DDIClient(session, host, False, token, "DEFAULT", controller)
        while time.time() < end:
            links = (await ddi()).get("_links", {})
            if "cancelAction" in links:
                action_id = re.search(r"/cancelAction/(.+)$", links["cancelAction"]["href"]).group(1)
                stop_id = (await ddi.cancelAction[action_id]())["cancelAction"]["stopId"]
                if mode == "reject":
                    await ddi.cancelAction[stop_id].feedback(CancelStatusExecution.rejected, CancelStatusResult.success, ["Cancelling not supported"])
                    say("cancel", action=action_id, stop=stop_id, answer="rejected")
                else:
                    await ddi.cancelAction[stop_id].feedback(CancelStatusExecution.closed, CancelStatusResult.success, ["cancellation acknowledged."])
                    say("cancel", action=action_id, stop=stop_id, answer="closed")
                canceled = True
            elif "deploymentBase" in links:
                action_id, resource = re.search(r"/deploymentBase/(.+)\?c=(.+)$", links["deploymentBase"]["href"]).groups()
                if not canceled:
                    if offered != action_id:
                        say("offered", action=action_id)
                    offered = action_id
                else:
                    info = await ddi.deploymentBase[action_id](resource)
                    artifact = info["deployment"]["chunks"][0]["artifacts"][0]
                    await ddi.get_binary(artifact["_links"]["download-http"]["href"], location)
                    ok = hashlib.sha256(open(location, "rb").read()).hexdigest() == artifact["hashes"]["sha256"]
                    await ddi.deploymentBase[action_id].feedback(
                        DeploymentStatusExecution.closed, DeploymentStatusResult.success if ok else DeploymentStatusResult.failure,
                        ["installed" if ok else "sha256 differs"])
                    say("installed", action=action_id, first=offered, ok=ok)
                    return 0 if ok else 1
            elif canceled:
                say("idle")
            await asyncio.sleep(1)
    say("deadline")
    return 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(*sys.argv[1:7])))
