"""The embedded default data: a generated C4-shaped corpus rich in retrievable facts, and the small
byte-level BPE tokenizer trained on it (both committed under data/, so the Quickstart needs no
download).

The corpus describes one fixed invented world (countries, cities, people) in many phrasings, so a
tiny model can learn facts that recur across documents, and adds documents whose facts exist only
inside the document (key-value registers, pass keys hidden in filler text) so that it also has to
retrieve from context, which is what MEAP is reported to improve. Everything is drawn from one
seeded `random.Random`: the same seed and wonderwords word lists give the same bytes.
"""

from __future__ import annotations

import gzip
import io
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence, Union

MASK_TOKEN = "[MASK]"
SPECIAL_TOKENS = ("<unk>", "<s>", "</s>")  # ids 0, 1, 2 as in LLaMA; [MASK] is added last
PASSKEY_FILLER = (
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
)

_ONSETS = ("b", "br", "d", "dr", "f", "g", "gr", "h", "k", "kr", "l", "m", "n", "p", "r", "s", "st", "t",
           "th", "v", "z", "c", "cl", "sh", "w", "j")
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "o", "ae", "ia", "ou", "ei")
_CODAS = ("", "", "", "n", "r", "l", "s", "th", "m", "nd", "rt", "x")
_COUNTRY_ENDINGS = ("ia", "ora", "eth", "and", "ova", "ar", "ia", "en")
_CITY_ENDINGS = ("", "", "ton", "mar", "dell", "ford", "grad", "heim", "port", "vale")
_REGIONS = ("northern", "southern", "eastern", "western", "central", "coastal", "highland")
_PROFESSIONS = ("painter", "poet", "engineer", "astronomer", "composer", "physician", "architect", "chemist",
                "historian", "sculptor", "mathematician", "botanist", "novelist", "cartographer", "judge",
                "merchant", "philosopher", "inventor", "sailor", "teacher")
_INSTRUMENTS = ("violin", "flute", "harp", "piano", "cello", "drum", "lute", "trumpet")
_COLORS = ("red", "blue", "green", "yellow", "purple", "orange", "white", "black", "silver", "golden")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")


def _word_lists(rng: random.Random) -> dict[str, list[str]]:
    """A small fixed vocabulary drawn from wonderwords, so the tiny model sees each word often."""
    from wonderwords import RandomWord
    from wonderwords.random_word import is_profanity

    lists = RandomWord()

    def pick(category: str, n: int) -> list[str]:
        words = sorted(w for w in lists.filter(include_categories=[category]) if w.isalpha() and w.islower()
                       and 3 <= len(w) <= 9 and not is_profanity(w))
        return rng.sample(words, n)

    return {"noun": pick("noun", 400), "adjective": pick("adjective", 120), "verb": pick("verb", 120)}


@dataclass
class Country:
    name: str
    capital: str
    cities: list[str]
    founded: int
    river: str
    language: str
    currency: str
    population: int  # millions
    region: str
    export: str
    neighbor: str = ""


@dataclass
class Person:
    first: str
    last: str
    born: int
    city: str
    country: str
    profession: str
    known_for: str
    instrument: str
    color: str

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"


class World:
    """The invented world the corpus describes; its facts are the same in every document."""

    def __init__(self, rng: random.Random, n_countries: int = 48, n_people: int = 240):
        self.rng = rng
        self.words = _word_lists(rng)
        self._used: set[str] = set()
        self.countries = [self._country() for _ in range(n_countries)]
        for country in self.countries:
            country.neighbor = rng.choice([c.name for c in self.countries if c is not country])
        self.people = [self._person() for _ in range(n_people)]

    def _fresh(self, make: Callable[[], str]) -> str:
        while True:
            name = make()
            if name not in self._used and 4 <= len(name) <= 12:
                self._used.add(name)
                return name

    def _syllables(self, n: int) -> str:
        rng = self.rng
        parts = [rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(n)]
        return "".join(parts)

    def _country(self) -> Country:
        rng = self.rng
        name = self._fresh(lambda: (self._syllables(rng.randint(1, 2)) + rng.choice(_COUNTRY_ENDINGS)).capitalize())
        cities = [self._fresh(lambda: (self._syllables(rng.randint(1, 2)) + rng.choice(_CITY_ENDINGS)).capitalize())
                  for _ in range(3)]
        return Country(
            name=name,
            capital=cities[0],
            cities=cities,
            founded=rng.randint(900, 1900),
            river=self._fresh(lambda: self._syllables(2).capitalize()),
            language=self._fresh(lambda: (self._syllables(rng.randint(1, 2)) + "ish").capitalize()),
            currency=self._fresh(lambda: self._syllables(1) + rng.choice(("al", "ek", "ar", "o"))),
            population=rng.randint(1, 90),
            region=rng.choice(_REGIONS),
            export=rng.choice(self.words["noun"]),
        )

    def _person(self) -> Person:
        rng = self.rng
        country = rng.choice(self.countries)
        return Person(
            first=self._fresh(lambda: self._syllables(rng.randint(1, 2)).capitalize()),
            last=self._fresh(lambda: self._syllables(2).capitalize()),
            born=rng.randint(1600, 1990),
            city=rng.choice(country.cities),
            country=country.name,
            profession=rng.choice(_PROFESSIONS),
            known_for=f"the {rng.choice(self.words['adjective'])} {rng.choice(self.words['noun'])}",
            instrument=rng.choice(_INSTRUMENTS),
            color=rng.choice(_COLORS),
        )


class DocumentWriter:
    """Writes documents about a `World`, each kind a method returning text."""

    def __init__(self, world: World, rng: random.Random):
        self.world, self.rng = world, rng
        self.kinds = (
            (self.country_article, 20),
            (self.person_biography, 25),
            (self.city_article, 10),
            (self.key_value_register, 20),
            (self.passkey, 15),
            (self.fact_questions, 10),
        )

    def document(self) -> str:
        makers, weights = zip(*self.kinds)
        return self.rng.choices(makers, weights)[0]()

    def filler(self, n: int) -> str:
        words, rng = self.world.words, self.rng
        sentences = []
        for _ in range(n):
            adjective, noun, verb = rng.choice(words["adjective"]), rng.choice(words["noun"]), rng.choice(words["verb"])
            template = rng.choice((
                "The {a} {n} tends to {v}.",
                "Some say that every {n} can {v}.",
                "Nobody expected the {n} to be so {a}.",
                "A {a} {n} was seen near the river.",
                "It is hard to {v} a {n} in winter.",
            ))
            sentences.append(template.format(a=adjective, n=noun, v=verb))
        return " ".join(sentences)

    def _facts(self, facts: list[str], keep: tuple[int, int]) -> str:
        first, rest = facts[0], facts[1:]
        self.rng.shuffle(rest)
        chosen = [first] + rest[: self.rng.randint(*keep)]
        if self.rng.random() < 0.5:
            chosen.insert(self.rng.randint(1, len(chosen)), self.filler(self.rng.randint(1, 2)))
        return " ".join(chosen)

    def country_article(self) -> str:
        c = self.world.countries[self.rng.randrange(len(self.world.countries))]
        opening = self.rng.choice((
            f"{c.name} is a country in the {c.region} region. Its capital is {c.capital}.",
            f"The capital of {c.name} is {c.capital}.",
            f"{c.name} is a {c.region} country whose capital city is {c.capital}.",
        ))
        facts = [
            opening,
            f"{c.capital}, the capital of {c.name}, was founded in {c.founded}.",
            f"The {c.river} River flows through {c.name}.",
            f"The official language of {c.name} is {c.language}.",
            f"{c.name} uses the {c.currency} as its currency.",
            f"About {c.population} million people live in {c.name}.",
            f"{c.name} shares a border with {c.neighbor}.",
            f"The main export of {c.name} is the {c.export}.",
            f"Other cities in {c.name} include {c.cities[1]} and {c.cities[2]}.",
        ]
        return f"{c.name}\n\n" + self._facts(facts, (3, 8))

    def person_biography(self) -> str:
        p = self.world.people[self.rng.randrange(len(self.world.people))]
        opening = self.rng.choice((
            f"{p.name} (born {p.born} in {p.city}) was a {p.profession} from {p.country}.",
            f"{p.name} was a {p.profession} born in {p.city}, {p.country}, in {p.born}.",
            f"Born in {p.born}, {p.name} became a well known {p.profession} in {p.country}.",
        ))
        facts = [
            opening,
            f"{p.first} is best known for {p.known_for}.",
            f"{p.name} was born in the year {p.born}.",
            f"The hometown of {p.name} is {p.city}.",
            f"{p.first} played the {p.instrument} every evening.",
            f"The favorite color of {p.name} was {p.color}.",
            f"As a {p.profession}, {p.last} worked for many years in {p.city}.",
        ]
        return f"{p.name}\n\n" + self._facts(facts, (2, 6))

    def city_article(self) -> str:
        c = self.world.countries[self.rng.randrange(len(self.world.countries))]
        city = self.rng.choice(c.cities)
        residents = [p for p in self.world.people if p.city == city]
        facts = [
            f"{city} is a city in {c.name}." if city != c.capital else f"{city} is the capital of {c.name}.",
            f"The {c.river} River passes close to {city}.",
            f"People in {city} speak {c.language} and pay with the {c.currency}.",
        ]
        facts += [f"The {p.profession} {p.name} was born in {city} in {p.born}." for p in residents[:3]]
        return f"{city}\n\n" + self._facts(facts, (1, 5))

    def key_value_register(self) -> str:
        """Facts that exist only inside this document: the model must look them up in context."""
        rng, words = self.rng, self.world.words
        n = rng.randint(4, 16)
        keys: list[str] = []
        while len(keys) < n:
            key = f"{rng.choice(words['adjective'])} {rng.choice(words['noun'])}"
            if key not in keys:
                keys.append(key)
        values = {key: str(rng.randint(1000, 99999)) for key in keys}
        lines = [f"Register of {rng.choice(words['noun'])} codes."]
        lines += [f"The code of the {key} is {values[key]}." for key in keys]
        lines.append(self.filler(rng.randint(0, 3)))
        for key in rng.sample(keys, rng.randint(1, min(4, n))):
            lines.append(f"Question: What is the code of the {key}? Answer: {values[key]}.")
        return "\n".join(line for line in lines if line)

    def passkey(self) -> str:
        rng = self.rng
        key = rng.randint(10000, 99999)
        before, after = rng.randint(0, 6), rng.randint(0, 6)
        return " ".join([
            "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it.",
            *[PASSKEY_FILLER] * before,
            f"The pass key is {key}. Remember it. {key} is the pass key.",
            *[PASSKEY_FILLER] * after,
            f"What is the pass key? The pass key is {key}.",
        ])

    def fact_questions(self) -> str:
        rng, world = self.rng, self.world
        lines = []
        for _ in range(rng.randint(3, 8)):
            if rng.random() < 0.5:
                c = rng.choice(world.countries)
                question, answer = rng.choice((
                    (f"What is the capital of {c.name}?", c.capital),
                    (f"Which river flows through {c.name}?", f"The {c.river} River"),
                    (f"What language is spoken in {c.name}?", c.language),
                    (f"When was {c.capital} founded?", f"In {c.founded}"),
                ))
            else:
                p = rng.choice(world.people)
                question, answer = rng.choice((
                    (f"When was {p.name} born?", f"In {p.born}"),
                    (f"What was the profession of {p.name}?", f"{p.name} was a {p.profession}"),
                    (f"Where was {p.name} born?", f"In {p.city}, {p.country}"),
                ))
            lines.append(f"Q: {question}\nA: {answer}.")
        return "\n".join(lines)


def generate_documents(seed: int, n_chars: int, world_seed: int = 0) -> Iterator[str]:
    """Documents about the world of `world_seed`, drawn with `seed`, until `n_chars` characters."""
    world = World(random.Random(world_seed))
    writer = DocumentWriter(world, random.Random(seed))
    total = 0
    while total < n_chars:
        text = writer.document()
        total += len(text)
        yield text


def c4_record(text: str, rng: random.Random) -> dict:
    title = text.split("\n", 1)[0].split(" ")[0].strip(".?:").lower() or "page"
    timestamp = (f"2019-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
                 f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z")
    return {"text": text, "timestamp": timestamp, "url": f"https://sample.meap.invalid/{title}-{rng.randint(1, 10**6)}"}


def write_json_gz(path: Union[str, Path], records: Iterable[dict]) -> int:
    """Writes JSON lines gzip-compressed with a fixed header (no timestamp), so reruns give the same bytes."""
    path = Path(path)
    buffer = io.BytesIO()
    count = 0
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False).encode() + b"\n")
            count += 1
    path.write_bytes(buffer.getvalue())
    return count


def make_sample_corpus(
    out_dir: Union[str, Path],
    train_chars: int = 5_000_000,
    val_chars: int = 250_000,
    train_files: int = 2,
    seed: int = 1234,
) -> list[Path]:
    """Writes c4-train.0000i-of-0000N.json.gz and c4-validation.00000-of-00001.json.gz.

    Validation draws new documents about the same world, so it measures facts learned in training.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    written = []
    for i in range(train_files):
        docs = generate_documents(seed=seed + 1 + i, n_chars=train_chars // train_files)
        path = out_dir / f"c4-train.{i:05d}-of-{train_files:05d}.json.gz"
        write_json_gz(path, (c4_record(text, rng) for text in docs))
        written.append(path)
    path = out_dir / "c4-validation.00000-of-00001.json.gz"
    write_json_gz(path, (c4_record(text, rng) for text in generate_documents(seed=seed + 1000, n_chars=val_chars)))
    written.append(path)
    return written


def train_bpe_tokenizer(texts: Iterable[str], out_dir: Union[str, Path], vocab_size: int = 4096) -> Path:
    """Trains a byte-level BPE with LLaMA's conventions and saves it as a Hugging Face tokenizer.

    `<unk>`=0, `<s>`=1, `</s>`=2 (EOS, the document separator), `[MASK]` = vocab_size - 1 (added last,
    as with the LLaMA-2 tokenizer's 32000). Encoding adds `<s>` in front, as LLaMA does; digits are
    split one by one, so numbers to be retrieved are spelled the same wherever they appear.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    bos_id = tokenizer.token_to_id("<s>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos_id)]
    )
    tokenizer.add_special_tokens([MASK_TOKEN])
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        mask_token=MASK_TOKEN,
        clean_up_tokenization_spaces=False,
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    wrapped.save_pretrained(str(out_dir))
    # transformers 5 records its own class name; the generic name loads under 4.x as well.
    config_path = out_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    return out_dir


def texts_from_json_files(paths: Sequence[Union[str, Path]]) -> Iterator[str]:
    """The `text` of every record in C4-style JSON-lines files (gzipped or not)."""
    from lit_gpt.prepare.pipeline import iter_records

    for path in paths:
        for _, text in iter_records(Path(path)):
            if type(text) is str:  # not a Skipped record
                yield text


HAYSTACK_CHARS = 1_000_000


def make_haystack_filler(sample_dir: Union[str, Path], out_path: Union[str, Path],
                         n_chars: int = HAYSTACK_CHARS) -> int:
    """Writes the needle-in-a-haystack filler that ships inside the package
    (lit_gpt/eval/haystack.jsonl.gz): the first `n_chars` characters of whole documents of the
    sample's training files, as {"text": ...} lines. Returns the number of documents."""
    from lit_gpt.eval.haystack import take_documents

    docs = take_documents(texts_from_json_files(sorted(Path(sample_dir).glob("c4-train.*.json.gz"))), n_chars)
    return write_json_gz(out_path, ({"text": text} for text in docs))
