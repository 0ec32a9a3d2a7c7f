"""doqu in one screen: define documents, save, reference, query, switch engines.

Run with `make demo`. The engine is chosen by one value, DATABASE below (or
the DOQU_DEMO_URL environment variable); the rest of the code never changes.
"""

import datetime as dt
import os
import tempfile

from doqu import Document, get_db
from doqu.validators import optional, required

workdir = tempfile.mkdtemp(prefix="doqu-demo-")
DATABASE = os.environ.get("DOQU_DEMO_URL", f"sqlite:///{workdir}/demo.db")


class Country(Document):
    structure = {"name": str, "code": str}
    validators = {"code": [required()]}

    def __str__(self) -> str:
        return self.name


class Person(Document):
    structure = {"name": str, "born": dt.date, "city": str, "country": Country}
    validators = {"name": [required()], "city": [required()], "born": [optional()]}
    labels = {"born": "Date of birth"}

    @property
    def age(self) -> int:
        return (dt.date(2026, 1, 1) - self.born).days // 365

    def __str__(self) -> str:
        return self.name


def main() -> None:
    db = get_db(DATABASE)
    print(f"engine: {db!r}\n")

    norway = Country(name="Norway", code="NO")
    people = [
        Person(name="Ada", born=dt.date(1990, 12, 10), city="Oslo", country=norway),
        Person(name="Bjørn", born=dt.date(2010, 3, 1), city="Bergen", country=norway),
        Person(name="Chidi", born=dt.date(1985, 6, 5), city="Lagos"),
    ]
    for person in people:
        person.save(db)  # saves the unsaved Country it refers to first
    db.save(None, {"name": "a record no class declared", "mood": "fine"})

    print("Everyone born before 2000, oldest first:")
    query = Person.objects(db).where(born__lt=dt.date(2000, 1, 1)).order_by("born")
    for person in query:
        country = person.country.name if person.country else "-"
        print(f"  {person.name:6} born {person.born}  {country}")
    print(f"  count(): {query.count()}")

    print("\nPeople in Norway (a reference, followed backwards):")
    print("  " + ", ".join(sorted(p.name for p in norway.person_set)))

    print("\nNot in Oslo:", [p.name for p in Person.objects(db).where_not(city="Oslo")])
    print("Cities:", Person.objects(db).values("city"))
    print("Countries the database holds (a class is a view of records):",
          [str(c) for c in Country.objects(db)])

    print("\nWhat runs where (explain):")
    print("  " + query.explain().replace("\n", "\n  "))

    try:
        Person(name="x", born="yesterday")
    except Exception as exc:  # a clear error, nothing written
        print(f"\nBad input is refused: {type(exc).__name__}: {exc}")

    print("\nTo switch engines, change one value, e.g.:")
    print("  DOQU_DEMO_URL=shelve:///tmp/demo.shelve make demo")
    print("  DOQU_DEMO_URL=postgresql://postgres@127.0.0.1/test?table=demo make demo")
    db.disconnect()


if __name__ == "__main__":
    main()
