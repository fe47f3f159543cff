"""The API's rate counts get a table of their own (issue 26), counted by one atomic statement per
request; they were kept in a database cache, whose read-then-write let concurrent requests through."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('api', '0002_apitoken_expires_at'),
    ]

    operations = [
        migrations.CreateModel(
            name='RateCount',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('key', models.CharField(help_text="The limit's scope and the client.", max_length=200, unique=True)),
                ('window_end', models.BigIntegerField(db_index=True, help_text='When the window counted ends (Unix time).')),
                ('count', models.PositiveIntegerField()),
            ],
            options={
                'verbose_name': 'API rate count',
            },
        ),
    ]
