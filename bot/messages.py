"""The bot's fixed texts in every language it ships: one catalogue, chosen per answer by the question's
language (the model itself answers in that language: bot/answer/prompts.py says so).

English is complete and the fallback: a question in a language without a catalogue gets English.
Every catalogue holds every key (tests/test_messages.py). To add a language, copy the English dict,
translate the values (keep the {placeholders}), and add it to CATALOGUES under its ISO 639-1 code.
"""

from __future__ import annotations

from retrieval.tokenize import detect_language

DEFAULT = "en"

EN = {
    "not_found": "I couldn't find this in the documentation I have access to.",
    "not_found_nearest": "These are the closest documents, though they don't seem to answer it:",
    "failed": (
        "**Model unavailable**: the language model did not answer, so I couldn't write an answer, and no "
        "passage in the docs answers this clearly enough to quote on its own. Please ask again later."
    ),
    "failed_nearest": "These are the closest documents:",
    "nothing_found": "I couldn't find anything in the docs that answers this.",
    "status_searching": "Searching the docs…",
    "status_reading_one": "Reading {n} document…",
    "status_reading": "Reading {n} documents…",
    "status_thinking": "Thinking…",
    "status_writing": "Writing the answer…",
    "task_search": "Searching the docs",
    "task_read": "Reading",
    "task_write": "Writing the answer",
    "task_not_found": "Not in the docs",
    "task_quoting": "Model unavailable: quoting the docs",
    "task_failed": "Model unavailable",
    "button_helpful": "Helpful",
    "button_not_helpful": "Not helpful",
    "button_still_need_help": "Still need help?",
}

DE = {
    "not_found": "Dazu habe ich in der Dokumentation, auf die ich zugreifen kann, nichts gefunden.",
    "not_found_nearest": "Das sind die am besten passenden Dokumente, auch wenn sie die Frage wohl nicht beantworten:",
    "failed": (
        "**Modell nicht erreichbar**: Das Sprachmodell hat nicht geantwortet, daher konnte ich keine Antwort "
        "schreiben, und keine Stelle in der Dokumentation beantwortet die Frage klar genug, um sie allein zu "
        "zitieren. Bitte frag später noch einmal."
    ),
    "failed_nearest": "Das sind die am besten passenden Dokumente:",
    "nothing_found": "Ich habe in der Dokumentation nichts gefunden, was das beantwortet.",
    "status_searching": "Durchsuche die Dokumentation…",
    "status_reading_one": "Lese {n} Dokument…",
    "status_reading": "Lese {n} Dokumente…",
    "status_thinking": "Denke nach…",
    "status_writing": "Schreibe die Antwort…",
    "task_search": "Dokumentation durchsuchen",
    "task_read": "Lesen",
    "task_write": "Antwort schreiben",
    "task_not_found": "Nicht in der Dokumentation",
    "task_quoting": "Modell nicht erreichbar: Zitate aus der Dokumentation",
    "task_failed": "Modell nicht erreichbar",
    "button_helpful": "Hilfreich",
    "button_not_helpful": "Nicht hilfreich",
    "button_still_need_help": "Noch Hilfe nötig?",
}

ES = {
    "not_found": "No encontré esto en la documentación a la que tengo acceso.",
    "not_found_nearest": "Estos son los documentos más cercanos, aunque no parecen responderlo:",
    "failed": (
        "**Modelo no disponible**: el modelo de lenguaje no respondió, así que no pude escribir una respuesta, "
        "y ningún pasaje de la documentación lo responde con la claridad suficiente para citarlo solo. "
        "Vuelve a preguntar más tarde."
    ),
    "failed_nearest": "Estos son los documentos más cercanos:",
    "nothing_found": "No encontré nada en la documentación que responda a esto.",
    "status_searching": "Buscando en la documentación…",
    "status_reading_one": "Leyendo {n} documento…",
    "status_reading": "Leyendo {n} documentos…",
    "status_thinking": "Pensando…",
    "status_writing": "Escribiendo la respuesta…",
    "task_search": "Buscar en la documentación",
    "task_read": "Leer",
    "task_write": "Escribir la respuesta",
    "task_not_found": "No está en la documentación",
    "task_quoting": "Modelo no disponible: citando la documentación",
    "task_failed": "Modelo no disponible",
    "button_helpful": "Útil",
    "button_not_helpful": "No es útil",
    "button_still_need_help": "¿Necesitas más ayuda?",
}

ZH = {
    "not_found": "在我能访问的文档中没有找到相关内容。",
    "not_found_nearest": "以下是最接近的文档，但它们似乎没有回答这个问题：",
    "failed": (
        "**模型不可用**：语言模型没有响应，因此无法生成回答，文档中也没有足够明确、可以单独引用的段落。请稍后再问。"
    ),
    "failed_nearest": "以下是最接近的文档：",
    "nothing_found": "文档中没有找到能回答这个问题的内容。",
    "status_searching": "正在搜索文档…",
    "status_reading_one": "正在阅读 {n} 篇文档…",
    "status_reading": "正在阅读 {n} 篇文档…",
    "status_thinking": "正在思考…",
    "status_writing": "正在撰写回答…",
    "task_search": "搜索文档",
    "task_read": "阅读",
    "task_write": "撰写回答",
    "task_not_found": "文档中没有",
    "task_quoting": "模型不可用：引用文档",
    "task_failed": "模型不可用",
    "button_helpful": "有帮助",
    "button_not_helpful": "没有帮助",
    "button_still_need_help": "仍需要帮助？",
}

CATALOGUES: dict[str, dict[str, str]] = {"en": EN, "de": DE, "es": ES, "zh": ZH}


def language_of(question: str) -> str:
    """The catalogue for a question: its detected language when one is shipped, else English."""
    lang = detect_language(question)
    return lang if lang in CATALOGUES else DEFAULT


def message(key: str, lang: str = DEFAULT, **values: object) -> str:
    """The text `key` in `lang` (English where the language has no catalogue), placeholders filled."""
    text = CATALOGUES.get(lang, EN)[key]
    return text.format(**values) if values else text
