"""Synthetic person and clinic names. Every name is invented; none belongs to a real patient."""

GIVEN_FEMALE = (
    "Avery Brianna Camila Dana Elena Farrah Gianna Hallie Imogen Jolene Kiara Leona Marisol Noelle Opal "
    "Priya Quinn Rosalind Selma Tamsin Ursula Vivian Willa Xiomara Yara Zinnia Beatriz Consuelo Daphne "
    "Esperanza Françoise Greta Héloïse Ingrid Józefa Katarzyna Lucía Maëlle Nuria Oksana"
).split()
GIVEN_MALE = (
    "Abel Bram Cyrus Dorian Emil Fletcher Gideon Hector Ignatius Jasper Kellan Lorcan Milo Nestor Orson "
    "Percival Quentin Rafferty Silas Tobias Ulric Vaughn Wendell Xavier Yusuf Zeke Anselm Bartholomew "
    "Cornelius Desmond Étienne Florian Gonzalo Håkon Iñigo Jürgen Kazimierz Leopold Mathéo Nikolai"
).split()
FAMILY = (
    "Abernathy Blackwood Castellano Dunmore Eastwick Fairbanks Galloway Hargreave Ironside Jessup "
    "Kingsley Lockhart Merriweather Northcott Oyelaran Pemberton Quimby Ravensworth Stanhope Thackeray "
    "Underhill Vasquez-Ortega Whitlock Xenakis Yarborough Zielinski O'Donnell Müller Nuñez Ibáñez "
    "Kowalczyk Lindqvist Ødegaard Papadakis Rautenberg Søndergaard Takahashi Urquhart Villeneuve Wójcik"
).split()
CLINIC_TOWNS = (
    "Asheville Boulder Charleston Durango Eugene Flagstaff Galveston Helena Ithaca Juneau Knoxville "
    "Laramie Missoula Naperville Ogden Pasadena Quincy Reno Savannah Tacoma Urbana Ventura Wichita "
    "Yakima Ames Bend Chico Dover Elgin Fresno Gary Hilo Irvine Joplin Kenosha Lowell Macon Nampa "
    "Orem Provo Racine Salem Tempe Utica Vail Waco Akron Boise Camden Duluth"
).split()
US_STATE_BY_TZ = {
    "America/New_York": ("NC", "SC", "NY", "GA", "OH", "NJ", "MA", "DE"),
    "America/Chicago": ("TX", "TN", "IL", "WI", "KS", "MO"),
    "America/Denver": ("CO", "MT", "WY", "UT", "ID"),
    "America/Phoenix": ("AZ",),
    "America/Los_Angeles": ("CA", "OR", "WA", "NV"),
}
