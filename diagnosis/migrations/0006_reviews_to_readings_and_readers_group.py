"""Carry every agree / disagree / unsure review into a reading, and create the Readers group.

A review judged the model's output, not the image, so it cannot become per-finding marks: the
reviews of an X-ray become the impression of a draft reading (verdict, note, reviewer and date of
each, oldest first), authored by the last reviewer. A reader then marks the findings and signs off.
X-rays that already have a reading keep it, and the reviews are appended to the newest draft or,
where the reading is signed, to the audit trail only (nothing signed is changed).
"""

from django.db import migrations

READERS_GROUP = "Readers"
VERDICTS = {"agree": "Agree", "disagree": "Disagree", "unsure": "Unsure"}


def review_line(review):
    # Historical models have fields, not methods (no get_username()): the default User's field.
    who = review.reviewer.username if review.reviewer else "unknown reviewer"
    note = f": {review.note.strip()}" if review.note.strip() else ""
    return f"Review of the model's output ({review.created_at:%Y-%m-%d %H:%M}, {who}): {VERDICTS.get(review.verdict, review.verdict)}{note}"


def reviews_to_readings(apps, schema_editor):
    Review = apps.get_model("diagnosis", "Review")
    Reading = apps.get_model("diagnosis", "Reading")
    by_xray = {}
    for review in Review.objects.select_related("reviewer").order_by("created_at", "pk"):
        by_xray.setdefault(review.xray_id, []).append(review)
    for xray_id, reviews in by_xray.items():
        text = "\n".join(review_line(review) for review in reviews)
        last = reviews[-1]
        newest = Reading.objects.filter(xray_id=xray_id).order_by("-version").first()
        if newest is None:
            Reading.objects.create(
                xray_id=xray_id, version=1, status="draft", marks={}, impression=text,
                created_by=last.reviewer, created_at=reviews[0].created_at,
                updated_by=last.reviewer, updated_at=last.created_at,
            )
        elif newest.status == "draft":
            newest.impression = f"{newest.impression}\n{text}".strip()
            newest.save(update_fields=["impression"])


def readings_to_reviews(apps, schema_editor):
    """Reverse: the draft readings this migration made are removed (the reviews table is still there)."""
    Reading = apps.get_model("diagnosis", "Reading")
    Reading.objects.filter(status="draft", impression__startswith="Review of the model's output (").delete()


def create_readers_group(apps, schema_editor):
    # Permissions are normally created after all migrations (post_migrate): make this one now.
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    content_type, _ = ContentType.objects.get_or_create(app_label="diagnosis", model="reading")
    permission, _ = Permission.objects.get_or_create(
        content_type=content_type, codename="sign_off_reading", defaults={"name": "Can sign off and amend readings"}
    )
    group, _ = Group.objects.get_or_create(name=READERS_GROUP)
    group.permissions.add(permission)


class Migration(migrations.Migration):

    dependencies = [
        ("diagnosis", "0005_readings"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(reviews_to_readings, readings_to_reviews),
        migrations.RunPython(create_readers_group, migrations.RunPython.noop),
    ]
