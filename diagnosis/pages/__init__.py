"""The staff's pages: worklist, patients, upload, the X-ray page with its reading form, images, model cards."""
