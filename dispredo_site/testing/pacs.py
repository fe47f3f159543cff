"""A PACS for the tests: the DICOM listener started on a free loopback port, and C-STORE as a
PACS sends it (pynetdicom as the SCU)."""

from contextlib import contextmanager

from pynetdicom import AE

from dispredo_site.testing.ports import on_free_port


@contextmanager
def running_listener(calling_ae_titles=("PACS",)):
    """The DICOM listener (AE title DISPREDO) in this process's threads; yields its port."""
    from diagnosis.interop.dicom_listener import start_listener

    port, server = on_free_port(  # another try if the port is taken before the listener binds it
        lambda port: start_listener(
            bind="127.0.0.1", port=port, ae_title="DISPREDO", calling_ae_titles=list(calling_ae_titles), block=False
        )
    )
    try:
        yield port
    finally:
        server.shutdown()


def send(port, datasets, calling_ae="PACS"):
    """C-STORE each dataset as a PACS would; returns the status of each (None if no association)."""
    ae = AE(ae_title=calling_ae)
    for dataset in datasets:
        ae.add_requested_context(dataset.SOPClassUID, dataset.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title="DISPREDO")
    if not assoc.is_established:
        return None
    try:
        return [assoc.send_c_store(dataset).Status for dataset in datasets]
    finally:
        assoc.release()
