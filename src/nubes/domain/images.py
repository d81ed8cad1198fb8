"""Images: the system images nubes builds itself, and (later) images of the accounts.

A system image is listed from the start of a server: an image still being built is `Creating`
with its `Progress`, and an instance may be launched from it at once (it waits in `Pending`
until the image is `Available`, see `launchable`); a build that fails leaves it `CreateFailed`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import or_, select

from nubes import errors
from nubes.clock import Clock
from nubes.domain.common import Scope
from nubes.store.db import Database
from nubes.store.models import Account, Image, ImageShare

SYSTEM = "system"
AVAILABLE, CREATING, WAITING = "Available", "Creating", "Waiting"
CREATE_FAILED, DEPRECATED = "CreateFailed", "Deprecated"
STATUSES = (CREATING, WAITING, AVAILABLE, "UnAvailable", CREATE_FAILED, DEPRECATED)


@dataclass(frozen=True)
class SystemImage:
    """What the image builders produce, in the shape the store keeps."""

    image_id: str
    name: str
    family: str
    os_name: str
    os_name_en: str
    os_type: str
    platform: str
    architecture: str
    size_gib: int
    artifact: str  # the builder's name for it ("tiny", "debian-12")
    description: str = ""


def owner_alias_for(image: Image, account_id: int) -> str:
    """system, self (the caller's), or others (shared with the caller)."""
    if image.owner_alias == SYSTEM:
        return SYSTEM
    return "self" if image.account_id == account_id else "others"


def launchable(image: Image) -> bool:
    """Whether an instance may be launched from `image` now. A system image being built is
    accepted: it is nubes' own, on its way (a fresh server builds them in its first minutes)
    and not the caller's to fail, so the instance waits in Pending for it. ECS refuses a custom
    image that is Creating (InvalidImageId.Creating), and so does nubes."""
    return image.status == AVAILABLE or (image.owner_alias == SYSTEM and image.status == CREATING)


def build_from(image: Image) -> bool | None:
    """Whether a Pending instance of `image` can be built now: True (its files are there),
    None (not yet: it is being made), False (never: it failed or was withdrawn)."""
    if image.status in (AVAILABLE, DEPRECATED):
        return True
    if image.status in (CREATING, WAITING):
        return None
    return False


class Images:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def register_system(self, image: SystemImage, status: str = AVAILABLE, progress: int = 100) -> None:
        """Add (or update) a system image; every region and every account sees it."""
        with self._db.session() as s:
            row = s.get(Image, image.image_id)
            if row is None:
                row = Image(id=image.image_id, created_at=self._clock.now())
                s.add(row)
            row.region_id, row.account_id, row.owner_alias = "*", None, SYSTEM
            row.name, row.description, row.family = image.name, image.description, image.family
            row.os_name, row.os_name_en, row.os_type = image.os_name, image.os_name_en, image.os_type
            row.platform, row.architecture, row.size_gib = image.platform, image.architecture, image.size_gib
            row.status, row.progress, row.usage, row.boot_mode = status, progress, "instance", "BIOS"
            row.artifact = image.artifact
            if status != AVAILABLE:
                return  # a build under way supersedes nothing yet
            # An older build of the same family is superseded, as ECS deprecates old system images.
            # So is a build planned under another ID (its build ended on a later day, which dates
            # the ID): the instances waiting for it boot the same files, as from any deprecated image.
            for older in s.scalars(
                select(Image).where(
                    Image.family == image.family, Image.owner_alias == SYSTEM, Image.id != image.image_id
                )
            ):
                if older.status in (AVAILABLE, CREATING):
                    older.status, older.progress = DEPRECATED, 100

    def plan_system(self, image: SystemImage) -> None:
        """List a system image about to be built: Creating at 0%, committed before the build
        starts (a restart finds it and builds it again). A row of that ID already usable (another
        host of the store built it) keeps its status."""
        with self._db.session() as s:
            row = s.get(Image, image.image_id)
            if row is not None and row.status in (AVAILABLE, DEPRECATED):
                return
        self.register_system(image, CREATING, 0)

    def planned_system(self, artifact: str) -> str | None:
        """The ID of the system image of `artifact` that is Creating (planned by an earlier start
        whose build did not finish), so that a restart builds that one and not a second."""
        with self._db.session() as s:
            return s.scalar(
                select(Image.id)
                .where(Image.owner_alias == SYSTEM, Image.artifact == artifact, Image.status == CREATING)
                .order_by(Image.created_at.desc(), Image.id)
                .limit(1)
            )

    def set_status(self, image_id: str, status: str, progress: int) -> None:
        with self._db.session() as s:
            row = s.get(Image, image_id)
            if row is not None:
                row.status, row.progress = status, progress

    def visible(
        self, scope: Scope, owner_alias: str | None = None, owner_id: int | None = None
    ) -> list[Image]:
        """System images, the caller's own ones and those shared with the caller in the region,
        newest first; `owner_alias` (system, self, others) and `owner_id` (the owner's account
        ID, 0 for system images) narrow them."""
        with self._db.session() as s:
            shared = select(ImageShare.image_id).where(ImageShare.account_id == scope.account_id)
            query = select(Image).where(
                or_(
                    Image.owner_alias == SYSTEM,
                    (Image.account_id == scope.account_id) & (Image.region_id == scope.region_id),
                    Image.id.in_(shared) & (Image.region_id == scope.region_id),
                )
            )
            images = list(s.scalars(query.order_by(Image.created_at.desc(), Image.id)))
        if owner_alias:
            wanted = {a.strip() for a in owner_alias.split(",") if a.strip()}
            images = [i for i in images if owner_alias_for(i, scope.account_id) in wanted]
        if owner_id is not None:
            owners = self.owner_ids(images)
            images = [i for i in images if owners.get(i.account_id or 0, 0) == owner_id]
        return images

    def owner_ids(self, images: Iterable[Image]) -> dict[int, int]:
        """The account IDs (uid, as ECS reports OwnerId) of the images' owners, by account."""
        account_ids = {i.account_id for i in images if i.account_id}
        if not account_ids:
            return {}
        with self._db.session() as s:
            rows = s.execute(select(Account.id, Account.uid).where(Account.id.in_(account_ids)))
            return {account_id: int(uid) if uid.isdigit() else 0 for account_id, uid in rows}

    def usable(
        self, scope: Scope, image_id: str | None, family: str | None, building_ok: bool = False
    ) -> Image:
        """The image to launch from: by ID, or the newest available image of a family. With
        `building_ok` (see `launchable`) a system image still Creating is taken too."""
        visible = self.visible(scope)
        images = [i for i in visible if i.status == AVAILABLE]
        if building_ok:  # the newest available one first, else one being built
            images += [i for i in visible if launchable(i) and i.status != AVAILABLE]
        if image_id:
            for image in visible:
                if image.id == image_id:
                    if image.status != AVAILABLE and not (building_ok and launchable(image)):
                        refuse = (
                            errors.invalid_image_id_creating
                            if image.status == CREATING
                            else errors.invalid_image_id_not_available
                        )
                        raise refuse(
                            f"The image {image_id} is {image.status}; it cannot launch instances now."
                        )
                    return image
            raise errors.invalid_image_id_not_found(f"The specified ImageId {image_id!r} does not exist.")
        if family:
            for image in images:
                if image.family == family:
                    return image
            raise errors.invalid_image_family_not_found(
                f"No available image of the family {family!r} exists."
            )
        raise errors.missing_parameter(
            "ImageId",
            message="Give ImageId (or ImageFamily, or a launch template).",
        )

    def get(self, image_id: str) -> Image | None:
        with self._db.session() as s:
            return s.get(Image, image_id)

    def get_many(self, image_ids: set[str]) -> dict[str, Image]:
        """Images by id, in one query (a page of instances names a few images many times)."""
        with self._db.session() as s:
            return {i.id: i for i in s.scalars(select(Image).where(Image.id.in_(image_ids)))}
