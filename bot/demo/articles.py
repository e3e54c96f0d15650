"""Sample articles for the demo site: fictional news, the project's own writing.

English, Russian and Azerbaijani, with a few deliberately awkward ones (markup characters in
text, emoji, a very long body, no image, a very long headline) so the demo shows the bot
coping with what real newsrooms publish.

TRAPS are pages the site serves at /traps/<slug> but never lists in a feed: each carries the
defects real pages have (issue #12), in English, Russian, Azerbaijani, Portuguese, German and
Japanese. Their `title`, `lead` and `lang` are what a careful editor would post; `markup` is
what the page's HTML says instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class DateMarkup(StrEnum):
    """How an article page states its publication date."""

    STANDARD = "standard"  # article:published_time and JSON-LD datePublished
    ITEMPROP_MULTI = "itemprop-multi"  # only <meta itemprop="datePublished dateCreated">
    ARTICLE_PUBLISHED = "article:published"  # only the unsuffixed OpenGraph property
    JSON_LD_YEAR_ONE = "json-ld-year-one"  # JSON-LD says 0001-01-01; a meta tag has the date


@dataclass(frozen=True)
class PageMarkup:
    """Where a trap page's HTML departs from what an editor would post."""

    traps: tuple[str, ...]  # the defects the page carries, for tests and the bench's report
    description: str | None = None  # meta/og/JSON-LD description, when not the lead
    head_title: str | None = None  # <title>, og:title and JSON-LD headline, when not the title
    h1_html: str | None = None  # the visible <h1>'s inner HTML, when not the escaped title
    dates: DateMarkup = DateMarkup.STANDARD
    declares_language: bool = True  # <html lang>, og:locale, JSON-LD inLanguage


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
    markup: PageMarkup | None = None  # set on trap pages only


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


# Trap pages (issue #12) ------------------------------------------------------------------

_SITE = "Sample Times"

TRAPS: tuple[Sample, ...] = (
    Sample(
        "az-shouted-sections",
        "az",
        "Parlament yeni büdcə qanununu qəbul etdi",
        "Deputatlar gələn ilin büdcəsini ikinci oxunuşda səs çoxluğu ilə təsdiqləyiblər.",
        _p(
            "Sənədə əsasən, təhsil və səhiyyə xərcləri əvvəlki illə müqayisədə artırılıb.",
            "Maliyyə naziri qızıl ehtiyatlarının da artdığını bildirib.",
            "Qanun prezidentin imzasından sonra qüvvəyə minəcək.",
        ),
        "SİYASƏT",
        ("İQTİSADİYYAT", "QIZIL", "ctp_video", "megaphone_top", "FrontPage"),
        "admin",
        markup=PageMarkup(
            traps=(
                "shouted Azerbaijani categories",
                "junk CMS tags",
                "description repeats the headline",
                "headline with ' | Site'",
                "junk author",
            ),
            description="Parlament yeni büdcə qanununu qəbul etdi",
            head_title=f"Parlament yeni büdcə qanununu qəbul etdi | {_SITE}",
        ),
    ),
    Sample(
        "en-nato-climate-fund",
        "en",
        "NATO allies pledge support for COP29 climate fund",
        "Defence ministers agreed on Thursday to set aside part of their budgets for climate "
        "adaptation at military bases.",
        _p(
            "The pledge follows talks on the sidelines of the COP29 summit in Baku.",
            "Officials said rising sea levels already threaten several coastal installations.",
            "A first report on the fund's spending is due next spring.",
        ),
        "WORLD",
        ("NATO", "COP29", "autoplay_video", "HomePage", "slider"),
        "Omar Haddad",
        markup=PageMarkup(
            traps=(
                "acronyms",
                "junk CMS tags",
                "description cut with '...'",
                "multi-valued itemprop date",
            ),
            description="Defence ministers agreed on Thursday to set aside part of their "
            "budgets for cli...",
            dates=DateMarkup.ITEMPROP_MULTI,
        ),
    ),
    Sample(
        "ru-qualifier-won",
        "ru",
        "Сборная выиграла отборочный матч",
        "Команда забила единственный гол во втором тайме и сохранила шансы на выход в финал.",
        _p(
            "Главный тренер назвал игру самой трудной в отборочном цикле.",
            "Следующий матч сборная проведёт на выезде через неделю.",
        ),
        "СПОРТ",
        ("футбол", "сборная"),
        "Игорь Смирнов",
        markup=PageMarkup(
            traps=("description cut with '…'", "headline with 'Site: '", "article:published only"),
            description="Команда забила единственный гол во втором тайме и сохранила шансы "
            "на выход в фи…",
            head_title=f"{_SITE}: Сборная выиграла отборочный матч",
            dates=DateMarkup.ARTICLE_PUBLISHED,
        ),
    ),
    Sample(
        "pt-bridge-reopens",
        "pt",
        "Ponte principal reabre após dois anos de obras",
        "A ponte principal da cidade voltou a receber trânsito na segunda-feira, três meses "
        "antes do previsto.",
        _p(
            "Os engenheiros substituíram cento e quarenta âncoras de cabos e toda a superfície "
            "do tabuleiro durante as obras.",
            "Os motoristas enfrentaram desvios de até quarenta minutos desde o início do "
            "fechamento da ponte.",
            "A prefeitura informou que as portagens não vão mudar até ao fim do ano.",
        ),
        "CIDADE",
        ("trânsito", "obras públicas"),
        "Joana Ferreira",
        markup=PageMarkup(
            traps=(
                "boilerplate: share widgets",
                "boilerplate: 'Continue lendo'",
                "page without lang",
            ),
            description="Compartilhe no WhatsApp Compartilhe no Facebook A ponte principal "
            "voltou a receber trânsito na segunda-feira. Continue lendo→",
            declares_language=False,
        ),
    ),
    Sample(
        "de-bridge-open-again",
        "de",
        "Die Brücke ist wieder offen",
        "Die wichtigste Brücke der Stadt ist seit Montag wieder für den Verkehr geöffnet, "
        "drei Monate früher als geplant.",
        _p(
            "Die Ingenieure haben während der Arbeiten hundertvierzig Seilanker und den "
            "gesamten Fahrbahnbelag ersetzt.",
            "Pendler mussten seit der Sperrung Umwege von bis zu vierzig Minuten fahren.",
        ),
        "STADT",
        ("Verkehr", "Brücken"),
        "Lena Brandt",
        markup=PageMarkup(
            traps=(
                "boilerplate: phone number",
                "boilerplate: copyright and e-mail",
                "headline with HTML tags",
                "headline with ' - Site'",
                "JSON-LD date 0001-01-01",
            ),
            description="Die Brücke ist seit Montag offen. Hinweise an die Redaktion: "
            "+49 30 1234 5678, redaktion@sample-times.example © 2025 Sample Times",
            head_title=f"Die <em>Brücke</em> ist wieder offen - {_SITE}",
            h1_html="Die <em>Brücke</em> ist wieder offen",
            dates=DateMarkup.JSON_LD_YEAR_ONE,
        ),
    ),
    Sample(
        "ja-subway-line",
        "ja",
        "新しい地下鉄線が十二月に開業",
        "地下鉄の新しい路線が十二月に開業し、郊外の住宅地と都心を二十五分で結ぶ。",
        _p(
            "最後のトンネルの掘削は先週終わり、駅の内装工事が進んでいる。",
            "新型車両には冷房と車内の無料通信が備えられる。",
            "運賃は既存の路線と同じになると市は説明した。",
        ),
        "社会",
        ("地下鉄", "交通"),
        _SITE,
        markup=PageMarkup(
            traps=("description cut with '…'", "page without lang", "site name as author"),
            description="地下鉄の新しい路線が十二月に開業し、郊外の住宅地と都心を二十…",
            declares_language=False,
        ),
    ),
    Sample(
        "en-council-budget",
        "en",
        "Council approves the new budget",
        "The council approved a spending plan on Tuesday that raises money for schools, "
        "libraries and road repairs across the city.",
        _p(
            "The plan passed by 31 votes to 12 after a debate that lasted into the evening.",
            "Opposition members said the rise in parking fees would hurt small shops.",
        ),
        "CITY",
        ("bud\u200bget", "coun\u00adcil"),
        "Analysis by Mira Solberg, Editor-at-large",
        markup=PageMarkup(
            traps=(
                "bidi controls, zero-width and soft hyphens in the title",
                "description with a word cut short",
                "role in the author",
            ),
            description="The council approved a spending plan on Tuesday that raises money "
            "for schools, libraries and road repa",
            head_title="Coun\u00adcil \u202eapproves\u202c the new bud\u200bget",
            h1_html="\u2066Coun\u00adcil approves the new bud\u200bget\u2069",
        ),
    ),
)
