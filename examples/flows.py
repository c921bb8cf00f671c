"""Flows: jobs that wait for other jobs. An album is built once its ten thumbnails are
resized (the resizes run in another queue), a receipt is emailed after the card is
charged (a chain), and a report sums the counts of three shards (a chord)."""

from __future__ import annotations

from typing import Any

from _server import run_example

from jobqueue import Flow, Job, JobQueue, chain, group


async def main(redis_url: str) -> None:
    albums = JobQueue("flows-albums", redis=redis_url)
    images = JobQueue("flows-images", redis=redis_url)

    @images.processor("resize")
    async def resize(job: Job[str]) -> str:
        return f"{job.data}.thumb.jpg"

    @albums.processor("build-album")
    async def build_album(job: Job[str]) -> dict[str, Any]:
        thumbs = await job.children_results()  # {"flows-images:<id>": "<name>.thumb.jpg"}
        return {"album": job.data, "pages": sorted(thumbs.values())}

    @albums.processor("charge")
    async def charge(job: Job[int]) -> str:
        return f"charge-{job.data}"

    @albums.processor("email-receipt")
    async def email_receipt(job: Job[str]) -> str:
        (charged,) = (await job.children_results()).values()
        return f"receipt for {charged} sent to {job.data}"

    @albums.processor("count")
    async def count(job: Job[int]) -> int:
        return job.data * 100

    @albums.processor("report")
    async def report(job: Job[None]) -> int:
        return sum((await job.children_results()).values())

    async with albums, images:
        await albums.start_worker()
        await images.start_worker()
        album = await albums.add_flow(
            Flow(
                "build-album",
                "holiday",
                children=[Flow("resize", f"img{i}", queue="flows-images") for i in range(10)],
                idempotency_key="album:holiday",  # adding it again adds nothing twice
            )
        )
        receipt = await albums.add_flow(
            chain(Flow("charge", 4200), Flow("email-receipt", "ada@example.com"))
        )
        summed = await albums.add_flow(
            group(Flow("count", 1), Flow("count", 2), Flow("count", 3), then=Flow("report", None))
        )
        for flow in (album, receipt, summed):
            info = await albums.wait_for(flow.id, timeout=30_000)
            print(f"{info.name} {info.id}: {info.status} -> {info.return_value}")


if __name__ == "__main__":
    run_example(main)
