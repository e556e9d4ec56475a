"""``wrong_language``: a fluent answer in a language the product did not ask for.

``language``: de (default), fr, es or ja. A canary question still gets its right answer first
(the number, or the capital), then the rest in the other language, as a model that switched
language mid-answer writes: the canary checks the fact, not the language, so a probe passes
(`expect` is None on purpose), and only the product's own language check, if it has one,
catches it. Any other prompt gets a whole answer in the other language. An ordinary "stop"
finish in every protocol: no provider flags the language of an answer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from chaos.faults.catalogue import FaultLike, FaultType, register
from chaos.faults.wire import Synthesize, words_of
from probes.canary import solve

if TYPE_CHECKING:
    from chaos.speakers import Ask, Speaker

# (after a canary's answer, a whole answer)
LANGUAGES = {
    "de": ("ist meine Antwort, so gut ich es heute sagen kann.",
           "Gerne helfe ich Ihnen weiter: hier ist meine Antwort, ausführlich und auf Deutsch."),
    "fr": ("est ma réponse, aussi bien que je puisse le dire aujourd'hui.",
           "Avec plaisir : voici ma réponse, détaillée et en français."),
    "es": ("es mi respuesta, tan bien como puedo decirlo hoy.",
           "Con gusto le ayudo: aquí está mi respuesta, detallada y en español."),
    "ja": ("が私の答えです。",
           "喜んでお手伝いします。こちらが日本語での詳しい回答です。"),
}


@register
class WrongLanguage(FaultType):
    name = "wrong_language"
    category = "stream"
    doc = "a fluent answer in another language (language=de|fr|es|ja); a canary's fact stays right"
    params: ClassVar[dict[str, Any]] = {"language": "de"}
    choices: ClassVar[dict[str, Any]] = {"language": LANGUAGES}

    def stream(self, fault: FaultLike, speaker: Speaker, ask: Ask) -> Synthesize:
        after, whole = LANGUAGES[fault.params["language"]]
        right = solve(ask.prompt)
        text = f"{right.strip()} {after}" if right is not None else whole
        return Synthesize(words_of(text, ask.max_tokens), "stop")
