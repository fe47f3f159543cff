def diagnostic_report_bundle(xray):
    raise NotImplementedError
