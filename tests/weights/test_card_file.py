"""A card.json that is valid JSON but not an object is the card error, naming the file."""

import pytest

from pyiqa_agiqa.weights.card import CARD_FILE, CardMismatchError, read_card


@pytest.mark.parametrize('text, kind', [('[{"format": "pyiqa-agiqa"}]', 'list'), ('"pyiqa-agiqa"', 'str'),
                                        ('null', 'NoneType'), ('3', 'int')])
def test_a_card_that_is_not_a_json_object_is_the_card_error(tmp_path, text, kind):
    (tmp_path / CARD_FILE).write_text(text)
    with pytest.raises(CardMismatchError, match=f'{CARD_FILE} is not a pyiqa-agiqa model card \\(a JSON {kind}, '):
        read_card(tmp_path)
