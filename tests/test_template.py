from alertd.rules.template import check, render


def test_render_fields_formats_and_unknowns():
    ctx = {"value": 5.991464, "step": 312, "labels": {"loss": "train/loss"}, "vars": {"num_classes": 400.0}}
    text = "{{ labels.loss }}={{ value | .3f }} log({{vars.num_classes|.0f}}) step {{ step }} {{ nope }}"
    assert render(text, ctx) == "train/loss=5.991 log(400) step 312 ?"
    assert render("{{ value }}", {"value": float("nan")}) == "nan"


def test_no_attribute_access_from_templates():
    # str.format would follow attributes; our lookup only walks mappings.
    assert render("{{ value.__class__ }}", {"value": 1.0}) == "?"


def test_bad_format_spec_is_reported():
    assert check("{{ value | .3q }}")
    assert not check("{{ value | .3g }} {{ step | d }}")
