"""Sample articles for the demo site: fictional news, the project's own writing.

English, Russian and Azerbaijani, with a few deliberately awkward ones (markup characters in
text, emoji, a very long body, no image, a very long headline) so the demo shows the bot
coping with what real newsrooms publish.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    slug: str
    lang: str
    title: str
    lead: str
    paragraphs: tuple[str, ...]
    category: str
    tags: tuple[str, ...]
    author: str
    image: str | None = "default"


def _p(*paragraphs: str) -> tuple[str, ...]:
    return paragraphs


SAMPLES: tuple[Sample, ...] = (
    Sample(
        "harbour-bridge-reopens",
        "en",
        "Harbour bridge reopens after two-year repair",
        "The city's main bridge carried traffic again on Monday, three months ahead of schedule.",
        _p(
            "Engineers replaced 140 cable anchors and the whole deck surface during the works.",
            "Commuters had faced detours of up to forty minutes since the closure began.",
            "The transport office said tolls will stay unchanged until the end of the year.",
        ),
        "CITY",
        ("transport", "infrastructure"),
        "Lena Brandt",
    ),
    Sample(
        "central-bank-holds-rate",
        "en",
        "Central bank holds key rate at 7.25%",
        "Policymakers kept borrowing costs unchanged, citing slowing but sticky inflation.",
        _p(
            "The decision was unanimous, according to a statement released after the meeting.",
            "Analysts had broadly expected a pause after two cuts earlier in the year.",
            "The bank said it would watch food and energy prices closely over the winter.",
        ),
        "ECONOMY",
        ("central bank", "inflation"),
        "Omar Haddad",
    ),
    Sample(
        "coastal-storm-warning",
        "en",
        "Storm warning issued for the northern coast",
        "Forecasters expect gusts of up to 110 km/h and heavy rain from Thursday night.",
        _p(
            "Ferry services between the islands have been suspended as a precaution.",
            "Residents in low-lying districts were advised to move vehicles to higher ground.",
            "Emergency services have placed additional crews on standby.",
        ),
        "WEATHER",
        ("storm", "safety"),
        "Mira Solberg",
    ),
    Sample(
        "summit-agrees-water-deal",
        "en",
        "Regional summit agrees on shared water plan",
        "Five governments signed a framework on river management after two days of talks.",
        _p(
            "The plan sets seasonal quotas and a joint monitoring commission.",
            "Delegates described the talks as difficult but constructive.",
            "Parliaments in each country must still ratify the agreement.",
        ),
        "WORLD",
        ("diplomacy", "water"),
        "Sabina Aliyeva",
    ),
    Sample(
        "museum-night-record",
        "en",
        "Museum night draws a record 60,000 visitors",
        "Queues formed outside the national gallery well past midnight.",
        _p(
            "Organisers said attendance was up by a fifth on last year.",
            "A new light installation in the main hall proved the most popular exhibit.",
        ),
        "CULTURE",
        ("museums", "events"),
        "Tom Okafor",
    ),
    Sample(
        "league-final-preview",
        "en",
        "Cup final: what to expect on Saturday",
        "Both finalists come into the match unbeaten in their last ten games.",
        _p(
            "The holders will be without their captain, who is suspended.",
            "Tickets sold out within an hour of going on sale last month.",
        ),
        "SPORT",
        ("football",),
        "Nadia Kerimova",
    ),
    Sample(
        "script-tag-headline",
        "en",
        'Council vote on "<script>" & <b>bold</b> rules ends 5 > 3 😀',
        "A test of awkward characters: <script>alert('x')</script> & stray <b> tags, \"quotes\" "
        "and emoji 🎉 all reach readers as plain text.",
        _p(
            "The council's web team asked for every symbol to be printed literally: < > & \" '.",
            "Emoji like 🇦🇿 🇬🇧 and 👩‍💻 must survive any trimming intact.",
        ),
        "CITY",
        ("council", "web"),
        "Lena Brandt",
    ),
    Sample(
        "rail-strike-called-off",
        "en",
        "Rail strike called off after late-night deal",
        "Unions accepted a revised offer that includes a 6% pay rise over two years.",
        _p(
            "Trains will run to the normal timetable from Wednesday.",
            "The operator apologised to passengers for weeks of uncertainty.",
        ),
        "ECONOMY",
        ("rail", "labour"),
        "Omar Haddad",
        image=None,
    ),
    Sample(
        "long-read-water-history",
        "en",
        "A very long headline about the centuries-long history of the region's rivers, canals, "
        "reservoirs and the communities that have depended on them through droughts, floods, "
        "wars and the arrival of modern engineering, told in one long read",
        "An extended feature on the waterways that shaped the region.",
        tuple(
            f"Part {i}: the river keeps its own calendar, and the people along its banks "
            "have learned to read it, from the spring floods that fill the meadows to the "
            "late-summer lows that expose the old stone fords. " * 6
            for i in range(1, 26)
        ),
        "FEATURES",
        ("history", "rivers"),
        "Mira Solberg",
    ),
    Sample(
        "airport-new-terminal",
        "en",
        "Airport opens new terminal for low-cost airlines",
        "The terminal adds capacity for four million passengers a year.",
        _p(
            "Check-in is fully automated, with staff on hand to help.",
            "A rail link to the city centre is due to open next spring.",
        ),
        "BUSINESS",
        ("aviation",),
        "Tom Okafor",
    ),
    Sample(
        "bank-holiday-opening",
        "ru",
        "Банки изменят график работы в праздничные дни",
        "Крупнейшие банки страны объявили о сокращённом рабочем дне накануне праздников.",
        _p(
            "Отделения будут работать до 15:00, мобильные приложения — в обычном режиме.",
            "Банкоматы пополнят заранее, сообщили в ассоциации банков.",
        ),
        "ЭКОНОМИКА",
        ("банки", "праздники"),
        "Анна Волкова",
    ),
    Sample(
        "metro-new-line",
        "ru",
        "Новая линия метро откроется в декабре",
        "Строители завершили проходку последнего тоннеля между станциями «Северная» и «Парковая».",
        _p(
            "Новая линия свяжет спальные районы с деловым центром за 25 минут.",
            "Пассажиров будут перевозить поезда нового поколения с кондиционерами.",
        ),
        "ГОРОД",
        ("метро", "транспорт"),
        "Игорь Смирнов",
    ),
    Sample(
        "harvest-record",
        "ru",
        "Аграрии собрали рекордный урожай пшеницы",
        "Сбор зерна превысил прошлогодний показатель на 12 процентов.",
        _p(
            "Наибольший прирост показали южные районы, где осень выдалась тёплой.",
            "Часть урожая направят на экспорт, сообщили в министерстве.",
        ),
        "ЭКОНОМИКА",
        ("сельское хозяйство",),
        "Анна Волкова",
    ),
    Sample(
        "chess-championship",
        "ru",
        "Юная шахматистка выиграла чемпионат страны",
        "Четырнадцатилетняя спортсменка не проиграла ни одной партии за весь турнир.",
        _p(
            "В последнем туре ей хватило ничьей с действующим чемпионом.",
            "Федерация включила её в состав сборной на олимпиаду.",
        ),
        "СПОРТ",
        ("шахматы",),
        "Игорь Смирнов",
    ),
    Sample(
        "theatre-season",
        "ru",
        "Театр драмы откроет сезон премьерой «Чайки»",
        "Постановку представит режиссёр, впервые работающий в городе.",
        _p(
            "Билеты на первые показы уже распроданы.",
            "Театр также объявил о программе для школьников.",
        ),
        "КУЛЬТУРА",
        ("театр",),
        "Мария Орлова",
    ),
    Sample(
        "baku-park-opens",
        "az",
        "Bakıda yeni şəhər parkı açıldı",
        "Park 12 hektar ərazini əhatə edir və gecə saat 23:00-dək açıq olacaq.",
        _p(
            "Ərazidə uşaq meydançaları, velosiped yolları və fəvvarələr yerləşir.",
            "Layihənin müəllifləri yerli memarlardır.",
        ),
        "ŞƏHƏR",
        ("park", "Bakı"),
        "Leyla Həsənova",
    ),
    Sample(
        "caspian-conference",
        "az",
        "Xəzər regionu üzrə beynəlxalq konfrans başa çatdı",
        "Konfransda ekologiya və nəqliyyat dəhlizləri müzakirə olunub.",
        _p(
            "İştirakçılar birgə bəyanat qəbul ediblər.",
            "Növbəti görüşün gələn il keçirilməsi planlaşdırılır.",
        ),
        "DÜNYA",
        ("Xəzər", "ekologiya"),
        "Rəşad Məmmədov",
    ),
    Sample(
        "football-qualifier",
        "az",
        "Milli komanda seçmə oyunda qələbə qazandı",
        "Komanda ikinci hissədə vurulan qolla rəqibini 1:0 hesabı ilə məğlub etdi.",
        _p(
            "Baş məşqçi oyunçuların mübarizəsini yüksək qiymətləndirib.",
            "Növbəti oyun gələn çərşənbə axşamı keçiriləcək.",
        ),
        "İDMAN",
        ("futbol",),
        "Rəşad Məmmədov",
    ),
)
