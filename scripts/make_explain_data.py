"""Regenerate the shipped stimulus sets of `interp.explain` (interp/data/sentiment.jsonl, statements.json).

The sentences and facts below were written for the project; this script only formats them, pairs true with false
statements and assigns the fixed held-out split (every 4th item of each family is "test").
Run: python scripts/make_explain_data.py
"""

from __future__ import annotations

import json
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "interp" / "data"

# (sentence, cue word) - 100 positive, 100 negative short reviews of films, food, places and things
POSITIVE = """The film was a delight from start to finish.|delight
I loved every minute of this concert.|loved
The soup was warm and delicious.|delicious
What a wonderful little hotel.|wonderful
The staff were friendly and helpful.|friendly
This book is a real joy to read.|joy
The ending made me smile for days.|smile
A brilliant performance by the whole cast.|brilliant
The garden is beautiful in the spring.|beautiful
Our guide was patient and kind.|kind
The new phone works perfectly.|perfectly
I am thrilled with my new bike.|thrilled
The bread was fresh and tasty.|tasty
The show was funny and clever.|funny
This is the best pizza in town.|best
The room was clean and cozy.|cozy
The music lifted my spirits.|lifted
The trip was a great success.|great
I enjoyed the quiet beach a lot.|enjoyed
The teacher explained everything clearly.|clearly
The museum was fascinating.|fascinating
The coffee here is excellent.|excellent
Such a charming village.|charming
The game was exciting until the last second.|exciting
The service was fast and polite.|polite
My parents adored the restaurant.|adored
The story is touching and honest.|touching
The painting is simply stunning.|stunning
The hike offered amazing views.|amazing
I would happily watch it again.|happily
The cake was sweet and perfect.|perfect
The team did a superb job.|superb
The lecture was inspiring.|inspiring
The shoes are comfortable all day.|comfortable
The movie was a pleasant surprise.|pleasant
The apartment is bright and lovely.|lovely
The kids had a fantastic time.|fantastic
The song is catchy and uplifting.|uplifting
The nurse was gentle and caring.|caring
This laptop is fast and reliable.|reliable
The festival was full of happy people.|happy
The dinner was a wonderful treat.|treat
The actors were outstanding.|outstanding
I felt welcome the moment I arrived.|welcome
The park is peaceful and green.|peaceful
The fruit was ripe and juicy.|juicy
The sequel is even better than the first.|better
The puzzle was fun to solve.|fun
The water was clear and refreshing.|refreshing
The author writes with great warmth.|warmth
The train was on time and comfortable.|comfortable
This camera takes gorgeous pictures.|gorgeous
The dancers were graceful and bold.|graceful
The tea was calm and soothing.|soothing
The jokes were hilarious.|hilarious
I am grateful for their help.|grateful
The market was lively and colorful.|lively
The update fixed everything nicely.|nicely
The chef made an impressive meal.|impressive
The sunset was magnificent.|magnificent
The class was useful and well planned.|useful
The library is a calm and pleasant place.|pleasant
The puppy is sweet and playful.|playful
The festival lights were dazzling.|dazzling
The bakery smells heavenly.|heavenly
The concert hall has superb sound.|superb
The new bridge looks elegant.|elegant
The documentary was insightful.|insightful
The waiter was cheerful all evening.|cheerful
The soap smells fresh and nice.|nice
The plot kept me hooked.|hooked
Her voice is warm and lovely.|lovely
The island is a little paradise.|paradise
The salad was crisp and fresh.|fresh
The workshop was a rewarding day.|rewarding
The city feels safe and friendly.|friendly
The costume design is marvelous.|marvelous
This chair is sturdy and comfortable.|sturdy
The animation is gorgeous and smooth.|gorgeous
The meeting went really well.|well
The mountain air was wonderful.|wonderful
The pasta was rich and satisfying.|satisfying
The novel is a masterpiece.|masterpiece
The hotel breakfast was generous.|generous
The zoo was a joy for the children.|joy
My new desk is perfect for work.|perfect
The app is simple and elegant.|elegant
The choir sang beautifully.|beautifully
The film left me feeling hopeful.|hopeful
The festival was a huge success.|success
The soup tasted like home.|home
The students were eager and bright.|bright
The gift made her very happy.|happy
The river walk was delightful.|delightful
The sequel was well worth the wait.|worth
The comedy was warm and witty.|witty
The repair was quick and cheap.|quick
The view from the tower is breathtaking.|breathtaking
I recommend this place to everyone.|recommend
The holiday was relaxing and fun.|relaxing"""

NEGATIVE = """The film was a bore from start to finish.|bore
I hated every minute of this concert.|hated
The soup was cold and bland.|bland
What a dreadful little hotel.|dreadful
The staff were rude and unhelpful.|rude
This book is a real chore to read.|chore
The ending made me angry for days.|angry
A terrible performance by the whole cast.|terrible
The garden is ugly in the spring.|ugly
Our guide was impatient and mean.|mean
The new phone breaks all the time.|breaks
I am disappointed with my new bike.|disappointed
The bread was stale and tasteless.|stale
The show was dull and silly.|dull
This is the worst pizza in town.|worst
The room was dirty and cramped.|dirty
The music gave me a headache.|headache
The trip was a total failure.|failure
I regretted going to the noisy beach.|regretted
The teacher explained nothing clearly.|nothing
The museum was boring.|boring
The coffee here is awful.|awful
Such a gloomy village.|gloomy
The game was tedious until the last second.|tedious
The service was slow and rude.|slow
My parents disliked the restaurant.|disliked
The story is shallow and fake.|shallow
The painting is simply hideous.|hideous
The hike had miserable weather.|miserable
I would never watch it again.|never
The cake was dry and burnt.|burnt
The team did a sloppy job.|sloppy
The lecture was painful to sit through.|painful
The shoes hurt after an hour.|hurt
The movie was a nasty surprise.|nasty
The apartment is dark and depressing.|depressing
The kids had a horrible time.|horrible
The song is annoying and repetitive.|annoying
The nurse was cold and careless.|careless
This laptop is slow and unreliable.|unreliable
The festival was full of angry people.|angry
The dinner was a huge letdown.|letdown
The actors were awful.|awful
I felt unwelcome the moment I arrived.|unwelcome
The park is noisy and filthy.|filthy
The fruit was rotten and sour.|rotten
The sequel is even worse than the first.|worse
The puzzle was frustrating to solve.|frustrating
The water was murky and smelly.|smelly
The author writes with no feeling at all.|no
The train was late and crowded.|late
This camera takes blurry pictures.|blurry
The dancers were clumsy and stiff.|clumsy
The tea was bitter and weak.|bitter
The jokes were embarrassing.|embarrassing
I am furious about their mistake.|furious
The market was dirty and chaotic.|chaotic
The update broke everything.|broke
The chef made a disgusting meal.|disgusting
The sunset was hidden by ugly smog.|ugly
The class was useless and badly planned.|useless
The library is a loud and unpleasant place.|unpleasant
The puppy is aggressive and loud.|aggressive
The festival lights were cheap and tacky.|tacky
The bakery smells awful.|awful
The concert hall has terrible sound.|terrible
The new bridge looks ugly.|ugly
The documentary was pointless.|pointless
The waiter was grumpy all evening.|grumpy
The soap smells harsh and nasty.|nasty
The plot bored me to tears.|bored
Her voice is harsh and grating.|grating
The island is a crowded mess.|mess
The salad was soggy and old.|soggy
The workshop was a wasted day.|wasted
The city feels unsafe and hostile.|hostile
The costume design is cheap and lazy.|lazy
This chair is wobbly and uncomfortable.|wobbly
The animation is choppy and ugly.|choppy
The meeting went really badly.|badly
The mountain air was freezing and miserable.|miserable
The pasta was greasy and disappointing.|disappointing
The novel is a mess.|mess
The hotel breakfast was stingy.|stingy
The zoo was sad for the children.|sad
My new desk is useless for work.|useless
The app is confusing and clunky.|clunky
The choir sang terribly.|terribly
The film left me feeling hopeless.|hopeless
The festival was a huge flop.|flop
The soup tasted like glue.|glue
The students were lazy and rude.|lazy
The gift made her very upset.|upset
The river walk was unpleasant.|unpleasant
The sequel was not worth the wait.|not
The comedy was mean and crude.|crude
The repair was slow and expensive.|expensive
The view from the tower is blocked and dull.|dull
I warn everyone to avoid this place.|avoid
The holiday was stressful and tiring.|stressful"""

CITIES = """Paris|France;London|the United Kingdom;Berlin|Germany;Madrid|Spain;Rome|Italy;Lisbon|Portugal;Vienna|Austria;
Athens|Greece;Warsaw|Poland;Prague|the Czech Republic;Budapest|Hungary;Dublin|Ireland;Oslo|Norway;Stockholm|Sweden;
Helsinki|Finland;Copenhagen|Denmark;Amsterdam|the Netherlands;Brussels|Belgium;Zurich|Switzerland;Moscow|Russia;
Kyiv|Ukraine;Istanbul|Turkey;Cairo|Egypt;Lagos|Nigeria;Nairobi|Kenya;Johannesburg|South Africa;Casablanca|Morocco;
Tokyo|Japan;Osaka|Japan;Seoul|South Korea;Beijing|China;Shanghai|China;Mumbai|India;Delhi|India;Bangkok|Thailand;
Hanoi|Vietnam;Jakarta|Indonesia;Manila|the Philippines;Sydney|Australia;Melbourne|Australia;Auckland|New Zealand;
Toronto|Canada;Vancouver|Canada;Montreal|Canada;Chicago|the United States;Boston|the United States;
Seattle|the United States;Houston|the United States;Miami|the United States;Mexico City|Mexico;Havana|Cuba;
Lima|Peru;Bogota|Colombia;Santiago|Chile;Buenos Aires|Argentina;Rio de Janeiro|Brazil;Sao Paulo|Brazil;
Caracas|Venezuela;Tehran|Iran;Baghdad|Iraq;Riyadh|Saudi Arabia;Dubai|the United Arab Emirates;Karachi|Pakistan;
Dhaka|Bangladesh;Kathmandu|Nepal;Singapore|Singapore;Kuala Lumpur|Malaysia;Taipei|Taiwan;Barcelona|Spain;
Milan|Italy;Munich|Germany;Hamburg|Germany;Lyon|France;Marseille|France;Manchester|the United Kingdom;
Edinburgh|the United Kingdom;Venice|Italy;Naples|Italy;Seville|Spain;Porto|Portugal;Krakow|Poland;
Saint Petersburg|Russia;Kyoto|Japan;Beirut|Lebanon;Jerusalem|Israel;Addis Ababa|Ethiopia;Accra|Ghana;
Dakar|Senegal;Tunis|Tunisia;Algiers|Algeria;Bucharest|Romania;Sofia|Bulgaria;Belgrade|Serbia;Zagreb|Croatia;
Reykjavik|Iceland;Ottawa|Canada;Los Angeles|the United States;San Francisco|the United States;
New York|the United States;Cape Town|South Africa;Hong Kong|China;Geneva|Switzerland;Rotterdam|the Netherlands;
Florence|Italy;Frankfurt|Germany;Quebec|Canada;Brisbane|Australia;Perth|Australia"""

ANIMALS = """dog|mammal;cat|mammal;horse|mammal;cow|mammal;sheep|mammal;pig|mammal;goat|mammal;lion|mammal;
tiger|mammal;elephant|mammal;giraffe|mammal;zebra|mammal;bear|mammal;wolf|mammal;fox|mammal;rabbit|mammal;
mouse|mammal;rat|mammal;squirrel|mammal;deer|mammal;monkey|mammal;gorilla|mammal;whale|mammal;dolphin|mammal;
bat|mammal;camel|mammal;kangaroo|mammal;koala|mammal;panda|mammal;hippo|mammal;sparrow|bird;eagle|bird;
owl|bird;parrot|bird;penguin|bird;ostrich|bird;pigeon|bird;crow|bird;duck|bird;goose|bird;swan|bird;
chicken|bird;turkey|bird;robin|bird;flamingo|bird;peacock|bird;hawk|bird;falcon|bird;seagull|bird;
salmon|fish;trout|fish;tuna|fish;shark|fish;cod|fish;goldfish|fish;sardine|fish;carp|fish;herring|fish;
catfish|fish;eel|fish;snake|reptile;lizard|reptile;crocodile|reptile;alligator|reptile;turtle|reptile;
tortoise|reptile;iguana|reptile;cobra|reptile;python|reptile;gecko|reptile;chameleon|reptile;frog|amphibian;
toad|amphibian;salamander|amphibian;newt|amphibian;ant|insect;bee|insect;wasp|insect;butterfly|insect;
moth|insect;beetle|insect;fly|insect;mosquito|insect;grasshopper|insect;cricket|insect;ladybug|insect;
dragonfly|insect;termite|insect;cockroach|insect;hamster|mammal;otter|mammal;beaver|mammal;cheetah|mammal;
leopard|mammal;moose|mammal;hedgehog|mammal;woodpecker|bird;pelican|bird;stork|bird;donkey|mammal;heron|bird"""


def _pairs(block: str, sep: str = ";") -> list[tuple[str, str]]:
    return [tuple(x.strip().split("|")) for x in block.replace("\n", "").split(sep) if x.strip()]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def main() -> None:
    pos = [tuple(line.split("|")) for line in POSITIVE.splitlines()]
    neg = [tuple(line.split("|")) for line in NEGATIVE.splitlines()]
    assert len(pos) == len(neg) == 100, (len(pos), len(neg))
    n = min(len(pos), len(neg))
    rows = []
    for i in range(n):  # interleaved, so every prefix is balanced; pair i = (positive i, negative i)
        for (text, cue), label in ((pos[i], "positive"), (neg[i], "negative")):
            rows.append({"text": text, "label": label, "cue": cue, "pair": i,
                         "split": "test" if i % 4 == 3 else "train"})
    (DATA / "sentiment.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    families = {}
    cities = _pairs(CITIES)
    countries = sorted({c for _, c in cities})
    items = []
    for i, (city, country) in enumerate(cities):
        others = [c for c in countries if c != country]
        wrong = others[(7 * i + 3) % len(others)]
        split = "test" if i % 4 == 3 else "train"
        items.append({"text": f"The city of {city} is in {country}.", "label": True, "pair": i, "split": split})
        items.append({"text": f"The city of {city} is in {wrong}.", "label": False, "pair": i, "split": split})
    families["cities"] = {"description": "city -> country; the false statement names another country of the set",
                          "items": items}
    animals = _pairs(ANIMALS)
    classes = sorted({c for _, c in animals})
    items = []
    for i, (animal, cls) in enumerate(animals):
        others = [c for c in classes if c != cls]
        wrong = others[i % len(others)]
        split = "test" if i % 4 == 3 else "train"
        items.append({"text": f"{_article(animal).capitalize()} {animal} is {_article(cls)} {cls}.", "label": True,
                      "pair": i, "split": split})
        items.append({"text": f"{_article(animal).capitalize()} {animal} is {_article(wrong)} {wrong}.",
                      "label": False, "pair": i, "split": split})
    families["animals"] = {"description": "animal -> class (mammal, bird, fish, reptile, amphibian, insect); the false "
                                          "statement names another class", "items": items}
    (DATA / "statements.json").write_text(json.dumps({"families": families}, indent=1) + "\n", encoding="utf-8")
    print({k: len(v["items"]) for k, v in families.items()}, "sentiment", len(rows))


if __name__ == "__main__":
    main()
